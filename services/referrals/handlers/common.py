"""What every referrals use case shares: who may act, loading a referral, and the two
records every change leaves (the local ``ReferralChanged`` event and the audit record)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from services.referrals import domain, envelope, floods, store
from shared import audit_trail
from shared.audit_trail import Actor
from shared.auth import Principal, Role
from shared.bus import Delivery
from shared.contracts.audit import Outcome
from shared.contracts.referrals import (
    Box,
    Header,
    ReferralChanged,
)
from shared.db import Connection
from shared.errors import Conflict, Forbidden, NotFound, PermanentFailure
from shared.events import CloudEvent
from shared.outbox import Outgoing
from shared.service import ServiceContext

log = logging.getLogger(__name__)
SERVICE = "referrals"
CASE_ROLES = (Role.CASEWORKER, Role.FOCAL_POINT)  # who may send, act and read a person's data
INBOX_CONSUMER = "referrals.inbox"
# Deliveries of one INBOX event before it is parked (consumer.py): about an hour of retries.
INBOX_MAX_DELIVER = 10


async def key_not_yet_known(
    ctx: ServiceContext, delivery: Delivery, sender: str, key_id: str
) -> bool:
    """Whether an event signed with a key the sender's record does not hold should wait for
    it: right after the sender's rotation, this node's directory may not have taken in the
    record with the new key yet (its consumer lags behind this one on the INBOX). It waits
    (the caller raises ``LookupError``: retried with back-off) while the directory has not
    applied everything that came before the event, and the sender is not flooding, until the
    last delivery; else the caller refuses it, for good, with its reason."""
    if delivery.num_delivered >= INBOX_MAX_DELIVER or await floods.flooding(ctx, sender):
        return False
    answer = await ctx.bus.request(
        "relais.cmd.directory.caught-up", {"inbox_seq": delivery.stream_seq}
    )
    if answer["caught_up"]:
        return False
    log.warning(
        "%s signed with key %s, which this node's directory has not taken in yet (delivery"
        " %d): retrying later",
        sender,
        key_id,
        delivery.num_delivered,
    )
    return True


def actor_of(principal: Principal) -> Actor:
    return audit_trail.actor_of(principal)


def system(ctx: ServiceContext) -> Actor:
    return audit_trail.system(ctx.settings.org, SERVICE)


async def audit(
    ctx: ServiceContext,
    conn: Connection,
    actor: Actor,
    action: str,
    referral_id: str,
    content: Any = None,
    outcome: Outcome = Outcome.OK,
) -> None:
    await ctx.write(conn, audit_entry(actor, action, referral_id, content, outcome))


def audit_entry(
    actor: Actor,
    action: str,
    referral_id: str,
    content: Any = None,
    outcome: Outcome = Outcome.OK,
) -> Outgoing:
    """``audit``'s record, to write with the change's other events (``ctx.write``)."""
    return audit_trail.entry(
        SERVICE,
        actor=actor,
        action=f"referral.{action}",
        object=f"referral:{referral_id}",
        content=content,
        outcome=outcome,
    )


async def changed(
    ctx: ServiceContext,
    conn: Connection,
    referral: store.Referral,
    change: str,
    by_org: str,
    *,
    at: datetime | None = None,
) -> None:
    """``at``: the transaction's ``store.now`` if the caller has it (one round trip less)."""
    if at is None:
        at = await store.now(conn)
    await ctx.write(conn, changed_event(ctx, referral, change, by_org, at=at))


def changed_event(
    ctx: ServiceContext, referral: store.Referral, change: str, by_org: str, *, at: datetime
) -> Outgoing:
    """``changed``'s local event, to write with the change's other events (``ctx.write``)."""
    return ctx.emitting(
        ReferralChanged(referral=referral.view(), change=change, by_org=by_org, at=at),
        about=referral.referral_id,
    )


def check_caller(ctx: ServiceContext, principal: Principal) -> None:
    if principal.org != ctx.settings.org:
        raise Forbidden("this node holds the referrals of its own organisation only")


async def load(conn: Connection, referral_id: str, *, for_update: bool = False) -> store.Referral:
    referral = await store.get(conn, referral_id, for_update=for_update)
    if referral is None:
        # Also the answer for a referral of other organisations: a node holds only its own.
        raise NotFound("no such referral", field="referral_id")
    return referral


@asynccontextmanager
async def applying_once(
    ctx: ServiceContext,
    event: CloudEvent,
    delivery: Delivery,
    referral_id: str,
    box: Box | None = None,
) -> AsyncIterator[tuple[Connection, store.Referral] | None]:
    """The transaction that applies a remote event about a referral, with the referral locked
    (``own_referral``): ``None`` when there is nothing to apply (this event was applied before,
    or the referral's envelope was refused here), and the event is then done all the same."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        # One round trip: the event recorded as processed and the referral locked.
        first_time, found = await store.claim(conn, INBOX_CONSUMER, event.id, referral_id)
        if not first_time:
            yield None
            return
        referral = await _theirs(conn, referral_id, found, delivery, box)
        yield None if referral is None else (conn, referral)


async def own_referral(
    conn: Connection, referral_id: str, delivery: Delivery, box: Box | None = None
) -> store.Referral | None:
    """The referral a remote event is about, if the event comes from its other party;
    ``None`` for a referral whose envelope this node refused (nothing to apply)."""
    found = await store.get(conn, referral_id, for_update=True)
    return await _theirs(conn, referral_id, found, delivery, box)


async def _theirs(
    conn: Connection,
    referral_id: str,
    referral: store.Referral | None,
    delivery: Delivery,
    box: Box | None,
) -> store.Referral | None:
    """``own_referral``'s checks on the referral as read (locked) by the caller."""
    if referral is None:
        if await store.was_refused(conn, referral_id):
            return None
        # The envelope may still be on its way or retried: not yet, rather than never.
        raise LookupError(f"referral {referral_id} is not here yet")
    if delivery.sender != referral.other_org or (box is not None and referral.box is not box):
        raise PermanentFailure(f"{delivery.sender} is not the other party of {referral_id}")
    return referral


def data_key(ctx: ServiceContext, referral: store.Referral) -> bytes:
    if referral.sealed_key is None:
        raise Conflict(
            "the personal data of this referral was erased (consent revoked or retention)"
        )
    header = referral.header
    # Sealed for this node's key of the time: the recipient's, or the sender's own copy; or,
    # once re-sealed after a rotation (reseal.py), for the key the row names.
    sealed_for = referral.sealed_for or (
        header.recipient_key_id if referral.box is Box.INBOX else header.sender_encryption_key_id
    )
    keys = ctx.node_keys()
    return envelope.data_key(
        referral.sealed_key, keys.encryption_key(sealed_for) or keys.encryption
    )


def alarms_of(ctx: ServiceContext, header: Header, side: domain.Side) -> list[domain.Alarm]:
    return domain.alarms(
        header.created_at,
        domain.DueDates(header.acknowledge_by, header.answer_by),
        side=side,
        reminder_share=ctx.settings.referral_reminder_share,
        grace=timedelta(hours=ctx.settings.referral_expiry_grace_hours),
    )
