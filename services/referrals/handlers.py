"""The referrals use cases: what a person (or a member system) asks, and what the other
node tells. Each runs in one transaction: the state change, its history, the event for the
other node, the events for this node's services and the audit record commit together."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.referrals import domain, envelope, forms, roster, store
from shared import audit_trail, processed
from shared.audit_trail import Actor
from shared.auth import Principal, Role
from shared.bus import Delivery
from shared.contracts.audit import Outcome
from shared.contracts.directory import CODE, ORG_ID, KeyUse, MembershipStatus
from shared.contracts.referrals import (
    Box,
    Consent,
    ConsentRevoked,
    Header,
    KeyDestroyed,
    LegalBasis,
    ReferralChanged,
    ReferralDeadline,
    ReferralEscalated,
    ReferralOffered,
    ReferralRefused,
    ReferralTransitioned,
    Status,
    Urgency,
)
from shared.crypto import key_id
from shared.db import Connection
from shared.errors import Conflict, Forbidden, Invalid, NotFound, PermanentFailure
from shared.events import CloudEvent, new_event_id
from shared.service import ServiceContext

log = logging.getLogger(__name__)
SERVICE = "referrals"
CASE_ROLES = (Role.CASEWORKER, Role.FOCAL_POINT)  # who may send, act and read a person's data


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_at: datetime | None = Field(default=None, description="when the consent ends")


class NewReferral(BaseModel):
    """What a sender gives; the payload's fields depend on the category (see /categories)."""

    model_config = ConfigDict(extra="forbid")

    to_org: str = Field(pattern=ORG_ID)
    category: str = Field(pattern=CODE)
    urgency: Urgency
    region: str | None = Field(default=None, pattern=CODE)
    legal_basis: LegalBasis | None = Field(
        default=None, description="required: no legal basis, no referral"
    )
    consent: ConsentIn | None = None
    payload: dict[str, Any]


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, pattern=CODE)
    note: str | None = Field(default=None, max_length=2000)


# -- helpers ---------------------------------------------------------------------------------


def _actor(principal: Principal) -> Actor:
    return audit_trail.actor_of(principal)


def _system(ctx: ServiceContext) -> Actor:
    return audit_trail.system(ctx.settings.org, SERVICE)


async def _record(
    ctx: ServiceContext,
    conn: Connection,
    actor: Actor,
    action: str,
    referral_id: str,
    content: Any = None,
    outcome: Outcome = Outcome.OK,
) -> None:
    await audit_trail.record(
        conn,
        SERVICE,
        actor=actor,
        action=f"referral.{action}",
        object=f"referral:{referral_id}",
        content=content,
        outcome=outcome,
    )


async def _changed(
    ctx: ServiceContext, conn: Connection, referral: store.Referral, change: str, by_org: str
) -> None:
    at = await store.now(conn)
    await ctx.emit(
        conn,
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


# -- sending ---------------------------------------------------------------------------------


def _request_digest(new: NewReferral) -> str:
    return hashlib.sha256(new.model_dump_json().encode()).hexdigest()


async def create(
    ctx: ServiceContext, principal: Principal, new: NewReferral, idempotency_key: str | None
) -> str:
    """Seal, sign and send a new referral; returns its id (the same one for a retried key)."""
    check_caller(ctx, principal)
    caller = f"{principal.org}/{principal.subject}"
    digest = _request_digest(new)
    if idempotency_key is not None:
        async with ctx.pool.acquire() as conn:
            earlier = await store.remembered(conn, caller, idempotency_key)
        if earlier is not None:
            return _same_request(earlier, digest)
    form = forms.form_of(new.category)
    payload = form.check(new.payload)
    if new.legal_basis is None:
        raise Invalid("a referral needs its legal basis", field="legal_basis")
    if new.legal_basis is LegalBasis.CONSENT and new.consent is None:
        raise Invalid("the legal basis is consent: record the consent", field="consent")
    if new.legal_basis is not LegalBasis.CONSENT and new.consent is not None:
        raise Invalid("consent is recorded only when it is the legal basis", field="consent")
    record = await roster.recipient(ctx, new.to_org, new.category)
    assert ctx.keys is not None, "the referrals service needs the node's keys"
    keys = ctx.keys
    async with ctx.pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            # Two concurrent retries: the second waits here for the first to commit.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{caller}/{idempotency_key}"
            )
            earlier = await store.remembered(conn, caller, idempotency_key)
            if earlier is not None:
                return _same_request(earlier, digest)
        now = await store.now(conn)
        if new.consent and new.consent.expires_at and new.consent.expires_at <= now:
            raise Invalid("the consent has already expired", field="consent.expires_at")
        recipient_key = roster.current_key(record, KeyUse.ENCRYPTION, now)
        due = domain.due_dates(now, new.urgency, ctx.settings.referral_deadlines)
        referral_id = new_event_id()
        header = Header(
            referral_id=referral_id,
            from_org=ctx.settings.org,
            to_org=new.to_org,
            category=new.category,
            urgency=new.urgency,
            region=new.region,
            legal_basis=new.legal_basis,
            consent=None
            if new.consent is None
            else Consent(
                given_at=now,
                expires_at=new.consent.expires_at,
                scope_org=new.to_org,
                scope_category=new.category,
                recorded_by=principal.subject,
            ),
            created_at=now,
            acknowledge_by=due.acknowledge_by,
            answer_by=due.answer_by,
            sender_key_id=key_id(keys.signing_public),
            recipient_key_id=recipient_key.key_id,
            sender_encryption_key_id=key_id(keys.encryption_public),
        )
        offer = envelope.seal(
            header,
            payload,
            keys=keys,
            recipient_public=recipient_key.public_key,
            sender_public=envelope.b64(keys.encryption_public),
        )
        await store.insert(
            conn,
            header=header,
            box=Box.OUTBOX,
            status=Status.SENT,
            status_at=now,
            status_by=ctx.settings.org,
            created_by=principal.subject,
            signature=offer.signature,
            nonce=offer.sealed.nonce,
            ciphertext=offer.sealed.ciphertext,
            sealed_key=offer.sealed.key_for_sender,
        )
        await store.add_history(
            conn,
            referral_id,
            change=Status.SENT.value,
            status=Status.SENT,
            at=now,
            by_org=ctx.settings.org,
            by_actor=principal.subject,
        )
        await store.set_alarms(conn, referral_id, _alarms(ctx, header, domain.Side.SENDER))
        if idempotency_key is not None:
            await store.remember(conn, caller, idempotency_key, digest, referral_id)
        await ctx.send(conn, offer, to=new.to_org, about=referral_id)
        referral = await load(conn, referral_id)
        await _changed(ctx, conn, referral, Status.SENT.value, ctx.settings.org)
        await _record(
            ctx, conn, _actor(principal), "sent", referral_id, offer.model_dump(mode="json")
        )
    return referral_id


def _same_request(earlier: tuple[str, str], digest: str) -> str:
    referral_id, request = earlier
    if request != digest:
        raise Conflict(
            "this Idempotency-Key was already used for a different referral",
            field="idempotency_key",
        )
    return referral_id


def _alarms(ctx: ServiceContext, header: Header, side: domain.Side) -> list[domain.Alarm]:
    return domain.alarms(
        header.created_at,
        domain.DueDates(header.acknowledge_by, header.answer_by),
        side=side,
        reminder_share=ctx.settings.referral_reminder_share,
        grace=timedelta(hours=ctx.settings.referral_expiry_grace_hours),
    )


# -- receiving -------------------------------------------------------------------------------

INBOX_CONSUMER = "referrals.inbox"


@dataclass(frozen=True)
class Refusal(Exception):
    """Why an envelope is not accepted: a reason code the sender is told (no content)."""

    reason: str


async def receive_offer(
    ctx: ServiceContext, event: CloudEvent, offer: ReferralOffered, delivery: Delivery
) -> None:
    """Verify, open and file an envelope addressed to this organisation."""
    header = offer.header
    sender = delivery.sender or header.from_org
    async with ctx.pool.acquire() as conn:
        earlier_refusal = await store.refusal_of(conn, event.id)
    if earlier_refusal is not None:
        raise PermanentFailure(f"envelope refused: {earlier_refusal}")
    try:
        payload_ok = await _verified(ctx, offer, sender)
    except Refusal as refusal:
        await _refuse(ctx, event, offer, sender, refusal.reason)
        raise PermanentFailure(f"envelope refused: {refusal.reason}") from None
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SERVICE, INBOX_CONSUMER, event.id):
            return
        if await store.get(conn, header.referral_id) is not None:
            return  # the same envelope sent twice under two event ids
        now = await store.now(conn)
        await store.insert(
            conn,
            header=header,
            box=Box.INBOX,
            status=Status.RECEIVED,
            status_at=now,
            status_by=ctx.settings.org,
            created_by=None,
            signature=offer.signature,
            nonce=offer.sealed.nonce,
            ciphertext=offer.sealed.ciphertext,
            sealed_key=offer.sealed.key_for_recipient,
        )
        for status, at, org in (
            (Status.SENT, header.created_at, header.from_org),
            (Status.RECEIVED, now, ctx.settings.org),
        ):
            await store.add_history(
                conn, header.referral_id, change=status.value, status=status, at=at, by_org=org
            )
        await store.set_alarms(
            conn, header.referral_id, _alarms(ctx, header, domain.Side.RECIPIENT)
        )
        step = ReferralTransitioned(
            referral_id=header.referral_id, status=Status.RECEIVED, at=now, by_org=ctx.settings.org
        )
        await ctx.send(conn, step, to=header.from_org, about=header.referral_id)
        referral = await load(conn, header.referral_id)
        await _changed(ctx, conn, referral, Status.RECEIVED.value, ctx.settings.org)
        await _record(
            ctx, conn, _system(ctx), "received", header.referral_id, {"fields": payload_ok}
        )


async def _verified(ctx: ServiceContext, offer: ReferralOffered, sender: str) -> list[str]:
    """Every check before an envelope is accepted; the payload's field names if it passes."""
    header = offer.header
    if header.from_org != sender:
        raise Refusal("sender_mismatch")
    if header.to_org != ctx.settings.org:
        raise Refusal("not_addressed_to_us")
    record = await roster.organisation(ctx, sender)
    if record is None:  # a newcomer whose record has not reached this replica yet: retry
        raise LookupError(f"{sender} is not in this node's directory yet")
    if record.status is not MembershipStatus.ACTIVE:
        raise Refusal("sender_not_active")
    signing = roster.key_by_id(record, header.sender_key_id, KeyUse.SIGNING)
    if signing is None:
        raise Refusal("unknown_signing_key")
    try:
        envelope.check_signature(offer, signing.public_key)
    except Forbidden:
        raise Refusal("bad_signature") from None
    assert ctx.keys is not None
    if header.recipient_key_id != key_id(ctx.keys.encryption_public):
        raise Refusal("not_our_key")
    try:
        key = envelope.data_key(offer.sealed.key_for_recipient, ctx.keys.encryption)
        payload = envelope.open_payload(header, offer.sealed.nonce, offer.sealed.ciphertext, key)
    except envelope.Unreadable:
        raise Refusal("undecryptable") from None
    try:
        forms.form_of(header.category).check(payload)
    except Invalid:
        raise Refusal("payload_outside_form") from None
    return sorted(payload)


async def _refuse(
    ctx: ServiceContext, event: CloudEvent, offer: ReferralOffered, sender: str, reason: str
) -> None:
    header = offer.header
    async with ctx.pool.acquire() as conn, conn.transaction():
        await store.record_refusal(conn, event.id, header.referral_id, sender, reason)
        now = await store.now(conn)
        refused = ReferralRefused(referral_id=header.referral_id, reason=reason, at=now)
        await ctx.send(conn, refused, to=sender, about=header.referral_id)
        await _record(
            ctx,
            conn,
            audit_trail.Actor(sender, "system:referrals"),
            "refused",
            header.referral_id,
            {"reason": reason, "event_id": event.id},
            Outcome.FAILED,
        )


async def record_refusal(
    ctx: ServiceContext, event: CloudEvent, refused: ReferralRefused, delivery: Delivery
) -> None:
    """At the sender: the recipient's node did not accept the envelope."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SERVICE, INBOX_CONSUMER, event.id):
            return
        if await store.get(conn, refused.referral_id) is None:
            # An envelope this node never sent, refused in its name: a forgery to look into.
            log.warning("%s refused an envelope this node never sent", delivery.sender)
            await _record(
                ctx,
                conn,
                audit_trail.Actor(delivery.sender or "unknown", "system:referrals"),
                "refused_unknown",
                refused.referral_id,
                refused.model_dump(mode="json"),
                Outcome.FAILED,
            )
            return
        referral = await _own_referral(conn, refused.referral_id, delivery, Box.OUTBOX)
        if referral is None:
            return
        await store.touch(conn, referral.referral_id, refused_reason=refused.reason)
        await store.add_history(
            conn,
            referral.referral_id,
            change="refused",
            status=None,
            at=refused.at,
            by_org=referral.other_org,
            reason=refused.reason,
        )
        await _changed(ctx, conn, referral, "refused", referral.other_org)
        await _record(ctx, conn, _system(ctx), "refused_by_recipient", referral.referral_id)


async def _own_referral(
    conn: Connection, referral_id: str, delivery: Delivery, box: Box | None = None
) -> store.Referral | None:
    """The referral a remote event is about, if the event comes from its other party;
    ``None`` for a referral whose envelope this node refused (nothing to apply)."""
    referral = await store.get(conn, referral_id, for_update=True)
    if referral is None:
        if await store.was_refused(conn, referral_id):
            return None
        # The envelope may still be on its way or retried: not yet, rather than never.
        raise LookupError(f"referral {referral_id} is not here yet")
    if delivery.sender != referral.other_org or (box is not None and referral.box is not box):
        raise PermanentFailure(f"{delivery.sender} is not the other party of {referral_id}")
    return referral


# -- steps -----------------------------------------------------------------------------------


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
                _data_key(ctx, referral),
                step_in.note,
                referral_id=referral_id,
                status=status.value,
                by_org=org,
            )
        step = domain.Step(status, now, org)
        await store.set_status(conn, referral_id, step)
        await store.add_history(
            conn,
            referral_id,
            change=status.value,
            status=status,
            at=now,
            by_org=org,
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
        await ctx.send(conn, told, to=referral.other_org, about=referral_id)
        updated = await load(conn, referral_id)
        await _changed(ctx, conn, updated, status.value, org)
        await _record(
            ctx, conn, _actor(principal), status.value, referral_id, told.model_dump(mode="json")
        )


def _data_key(ctx: ServiceContext, referral: store.Referral) -> bytes:
    if referral.sealed_key is None:
        raise Conflict(
            "the personal data of this referral was erased (consent revoked or retention)"
        )
    assert ctx.keys is not None
    return envelope.data_key(referral.sealed_key, ctx.keys.encryption)


async def apply_step(
    ctx: ServiceContext, event: CloudEvent, step: ReferralTransitioned, delivery: Delivery
) -> None:
    """A step the other organisation's node made: applied by the rules that keep both nodes
    in the same state (``domain``), or kept in the history as arriving late."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SERVICE, INBOX_CONSUMER, event.id):
            return
        referral = await _own_referral(conn, step.referral_id, delivery)
        if referral is None:
            return
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
        if applies:
            await store.set_status(conn, referral.referral_id, incoming)
        await store.add_history(
            conn,
            referral.referral_id,
            change=step.status.value,
            status=step.status,
            at=step.at,
            by_org=step.by_org,
            reason=step.reason,
            sealed_note=step.sealed_note,
            applied=applies,
        )
        if applies:
            updated = await load(conn, referral.referral_id)
            await _changed(ctx, conn, updated, step.status.value, step.by_org)
        await _record(
            ctx,
            conn,
            audit_trail.Actor(step.by_org, "system:referrals"),
            step.status.value if applies else f"{step.status.value}_late",
            referral.referral_id,
            step.model_dump(mode="json"),
        )


# -- consent ---------------------------------------------------------------------------------


async def revoke_consent(ctx: ServiceContext, principal: Principal, referral_id: str) -> None:
    """The person withdrew consent: the recipient's node must destroy its copy of the key."""
    check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn, conn.transaction():
        referral = await load(conn, referral_id, for_update=True)
        if referral.box is not Box.OUTBOX:
            raise Forbidden("consent is revoked by the organisation that collected it")
        if referral.consent_state != "given":
            raise Conflict(
                f"consent cannot be revoked: it is {referral.consent_state.replace('_', ' ')}",
                field="consent",
            )
        now = await store.now(conn)
        await store.touch(conn, referral_id, consent_state="revoked")
        await store.add_history(
            conn,
            referral_id,
            change="consent_revoked",
            status=None,
            at=now,
            by_org=ctx.settings.org,
            by_actor=principal.subject,
        )
        await ctx.send(conn, ConsentRevoked(referral_id=referral_id, at=now), to=referral.other_org)
        await _changed(ctx, conn, referral, "consent_revoked", ctx.settings.org)
        await _record(ctx, conn, _actor(principal), "consent_revoked", referral_id)


async def destroy_key(
    ctx: ServiceContext, event: CloudEvent, revoked: ConsentRevoked, delivery: Delivery
) -> None:
    """At the recipient: the person withdrew consent; erase this node's copy of the data key,
    and confirm."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SERVICE, INBOX_CONSUMER, event.id):
            return
        referral = await _own_referral(conn, revoked.referral_id, delivery, Box.INBOX)
        if referral is None:
            return
        await store.add_history(
            conn,
            referral.referral_id,
            change="consent_revoked",
            status=None,
            at=revoked.at,
            by_org=referral.other_org,
        )
        await _destroy_copy(ctx, conn, referral, "consent_revoked")


async def expire_consents(ctx: ServiceContext) -> None:
    """At the recipient: consent given until a date that has passed ends like a revocation."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        for referral_id in await store.lapsed_consents(conn):
            referral = await load(conn, referral_id, for_update=True)
            await _destroy_copy(ctx, conn, referral, "consent_expired")


async def _destroy_copy(
    ctx: ServiceContext, conn: Connection, referral: store.Referral, why: str
) -> None:
    now = await store.now(conn)
    await store.touch(
        conn, referral.referral_id, consent_state="revoked", sealed_key=None, key_destroyed_at=now
    )
    await store.forget_notes(conn, referral.referral_id)
    await store.add_history(
        conn,
        referral.referral_id,
        change="key_destroyed",
        status=None,
        at=now,
        by_org=ctx.settings.org,
    )
    await ctx.send(
        conn,
        KeyDestroyed(referral_id=referral.referral_id, at=now),
        to=referral.other_org,
        about=referral.referral_id,
    )
    await _changed(ctx, conn, referral, why, ctx.settings.org)
    await _record(ctx, conn, _system(ctx), "key_destroyed", referral.referral_id, {"why": why})


async def confirm_key_destroyed(
    ctx: ServiceContext, event: CloudEvent, destroyed: KeyDestroyed, delivery: Delivery
) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SERVICE, INBOX_CONSUMER, event.id):
            return
        referral = await _own_referral(conn, destroyed.referral_id, delivery, Box.OUTBOX)
        if referral is None:
            return
        await store.touch(conn, referral.referral_id, consent_state="key_destroyed")
        await store.add_history(
            conn,
            referral.referral_id,
            change="key_destroyed",
            status=None,
            at=destroyed.at,
            by_org=referral.other_org,
        )
        await _changed(ctx, conn, referral, "key_destroyed", referral.other_org)
        await _record(ctx, conn, _system(ctx), "key_destroyed_confirmed", referral.referral_id)


# -- reading the person's data ---------------------------------------------------------------


async def read_payload(
    ctx: ServiceContext, principal: Principal, referral_id: str
) -> dict[str, Any]:
    """Decrypt a referral's payload (and its notes) for an authorised person; audited."""
    check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn, conn.transaction():
        referral = await load(conn, referral_id)
        try:
            key = _data_key(ctx, referral)
        except Conflict:
            await _record(
                ctx, conn, _actor(principal), "payload_read", referral_id, outcome=Outcome.REFUSED
            )
            raise
        assert referral.nonce is not None and referral.ciphertext is not None
        payload = envelope.open_payload(referral.header, referral.nonce, referral.ciphertext, key)
        notes = []
        for entry in await store.history(conn, referral_id):
            if entry.sealed_note and entry.status is not None:
                text = envelope.open_note(
                    key,
                    entry.sealed_note,
                    referral_id=referral_id,
                    status=entry.status.value,
                    by_org=entry.by_org,
                )
                notes.append(
                    {
                        "status": entry.status.value,
                        "at": entry.at.isoformat(),
                        "by_org": entry.by_org,
                        "note": text,
                    }
                )
        # The read is recorded with the data it showed (its digest), in the same transaction.
        await _record(
            ctx, conn, _actor(principal), "payload_read", referral_id, {"payload": payload}
        )
    return {"referral_id": referral_id, "payload": payload, "notes": notes}


# -- the clock -------------------------------------------------------------------------------


async def fire_due_alarms(ctx: ServiceContext) -> int:
    """Reminders, breaches and expiries whose time has come on this node's clock."""
    fired = 0
    while True:
        async with ctx.pool.acquire() as conn, conn.transaction():
            due = await store.take_due_alarms(conn, limit=50)
            for alarm in due:
                await _fire(ctx, conn, alarm)
        fired += len(due)
        if len(due) < 50:
            return fired


async def _fire(ctx: ServiceContext, conn: Connection, alarm: store.Due) -> None:
    referral = await load(conn, alarm.referral_id, for_update=True)
    if not domain.still_pending(alarm.deadline, referral.status):
        return
    if alarm.timer is domain.Timer.EXPIRY:
        await _expire(ctx, conn, referral)
        return
    await ctx.emit(
        conn,
        ReferralDeadline(
            referral=referral.view(),
            deadline=alarm.deadline.value,
            kind=alarm.timer.value,
            due_at=alarm.due_at,
        ),
        about=referral.referral_id,
    )
    if alarm.timer is domain.Timer.BREACH and referral.side is domain.Side.SENDER:
        header = referral.header
        escalation = ReferralEscalated(
            referral_id=referral.referral_id,
            from_org=header.from_org,
            to_org=header.to_org,
            category=header.category,
            urgency=header.urgency,
            status=referral.status,
            deadline=alarm.deadline.value,
            due_at=alarm.due_at,
        )
        await ctx.send(conn, escalation, to=ctx.settings.hub_org, about=referral.referral_id)
        await _record(
            ctx, conn, _system(ctx), f"{alarm.deadline.value}_breached", referral.referral_id
        )


async def _expire(ctx: ServiceContext, conn: Connection, referral: store.Referral) -> None:
    now = await store.now(conn)
    org = ctx.settings.org
    await store.set_status(conn, referral.referral_id, domain.Step(Status.EXPIRED, now, org))
    await store.add_history(
        conn,
        referral.referral_id,
        change=Status.EXPIRED.value,
        status=Status.EXPIRED,
        at=now,
        by_org=org,
    )
    told = ReferralTransitioned(
        referral_id=referral.referral_id, status=Status.EXPIRED, at=now, by_org=org
    )
    await ctx.send(conn, told, to=referral.other_org, about=referral.referral_id)
    updated = await load(conn, referral.referral_id)
    await _changed(ctx, conn, updated, Status.EXPIRED.value, org)
    await _record(ctx, conn, _system(ctx), Status.EXPIRED.value, referral.referral_id)


async def shred_expired_payloads(ctx: ServiceContext) -> list[str]:
    """Crypto-shred the payloads of referrals closed longer ago than the retention period."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        erased = await store.shred_closed(conn, ctx.settings.referral_retention_days)
        for referral_id in erased:
            await _record(ctx, conn, _system(ctx), "payload_shredded", referral_id)
    return erased
