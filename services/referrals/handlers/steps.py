"""The steps of a referral's life: made by a person on this node, or told by the other
organisation's node and applied by the rules that keep both nodes in the same state."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.referrals import domain, envelope, forms, store
from services.referrals.handlers.common import (
    actor_of,
    applying_once,
    audit_entry,
    changed_event,
    check_caller,
    data_key,
    load,
)
from shared import audit_trail
from shared.auth import Principal
from shared.bus import Delivery
from shared.contracts.directory import CODE
from shared.contracts.referrals import (
    ReferralTransitioned,
)
from shared.errors import PermanentFailure
from shared.events import CloudEvent
from shared.service import ServiceContext


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, pattern=CODE)
    note: str | None = Field(default=None, max_length=2000)


async def act(
    ctx: ServiceContext,
    principal: Principal,
    referral_id: str,
    action: domain.Action,
    step_in: StepIn,
) -> None:
    """A person's step on a referral of their organisation, told to the other organisation."""
    check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn, conn.transaction():
        referral = await load(conn, referral_id, for_update=True)
        status = domain.local_move(referral.status, referral.side, action, step_in.reason)
        forms.check_reason(domain.MOVES[action].reason, step_in.reason)
        now = await store.now(conn)
        org = ctx.settings.org
        sealed_note = None
        if step_in.note:
            sealed_note = envelope.seal_note(
                data_key(ctx, referral),
                step_in.note,
                referral_id=referral_id,
                status=status.value,
                by_org=org,
            )
        step = domain.Step(status, now, org)
        # Its row as loaded: nothing below changes it (history is a table of its own).
        updated = await store.set_status(
            conn,
            referral_id,
            step,
            by_actor=principal.subject,
            reason=step_in.reason,
            sealed_note=sealed_note,
        )
        told = ReferralTransitioned(
            referral_id=referral_id,
            status=status,
            at=now,
            by_org=org,
            reason=step_in.reason,
            sealed_note=sealed_note,
        )
        # The step told, the local event and the audit record: one statement.
        await ctx.write(
            conn,
            ctx.sending(told, to=referral.other_org, about=referral_id),
            changed_event(ctx, updated, status.value, org, at=now),
            audit_entry(
                actor_of(principal), status.value, referral_id, told.model_dump(mode="json")
            ),
        )


async def apply_step(
    ctx: ServiceContext, event: CloudEvent, step: ReferralTransitioned, delivery: Delivery
) -> None:
    """A step the other organisation's node made: applied by the rules that keep both nodes
    in the same state (``domain``), or kept in the history as arriving late."""
    async with applying_once(ctx, event, delivery, step.referral_id) as applied:
        if applied is None:
            return
        conn, referral = applied
        their_side = (
            domain.Side.RECIPIENT if referral.side is domain.Side.SENDER else domain.Side.SENDER
        )
        if step.by_org != delivery.sender or not domain.remote_status_is_plausible(
            step.status, their_side
        ):
            raise PermanentFailure(
                f"{delivery.sender} cannot make a referral {step.status.value} as the {their_side}"
            )
        incoming = domain.Step(step.status, step.at, step.by_org)
        applies = domain.remote_step_applies(referral.step, incoming, their_side)
        updated = referral
        if applies:  # the step and its history entry: one statement
            updated = await store.set_status(
                conn,
                referral.referral_id,
                incoming,
                reason=step.reason,
                sealed_note=step.sealed_note,
            )
        else:  # kept in the history only, as arriving late
            await store.add_history(
                conn,
                referral.referral_id,
                change=step.status.value,
                status=step.status,
                at=step.at,
                by_org=step.by_org,
                reason=step.reason,
                sealed_note=step.sealed_note,
                applied=False,
            )
        recorded = audit_entry(
            audit_trail.Actor(step.by_org, "system:referrals"),
            step.status.value if applies else f"{step.status.value}_late",
            referral.referral_id,
            step.model_dump(mode="json"),
        )
        if applies:  # set_status stamped the row with the transaction's clock: no read of it
            at = updated.updated_at
            change = changed_event(ctx, updated, step.status.value, step.by_org, at=at)
            await ctx.write(conn, change, recorded)  # one statement for both
        else:
            await ctx.write(conn, recorded)
