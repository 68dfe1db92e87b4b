"""Receiving an envelope: verified against the directory, opened, checked against its form,
and filed; or refused, parked and reported to its sender without its content."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.referrals import domain, envelope, floods, forms, roster, store
from services.referrals.handlers.common import (
    INBOX_CONSUMER,
    SERVICE,
    alarms_of,
    audit,
    audit_entry,
    changed,
    changed_event,
    key_not_yet_known,
    log,
    own_referral,
    system,
)
from shared import audit_trail, processed
from shared.bus import Delivery
from shared.contracts.audit import Outcome
from shared.contracts.directory import KeyUse, MembershipStatus
from shared.contracts.referrals import (
    Box,
    ReferralOffered,
    ReferralRefused,
    ReferralTransitioned,
    RefusalReason,
    Status,
)
from shared.errors import Forbidden, Invalid, PermanentFailure
from shared.events import CloudEvent
from shared.service import ServiceContext


@dataclass(frozen=True)
class Refusal(Exception):
    """Why an envelope is not accepted: a reason code the sender is told (no content)."""

    reason: RefusalReason


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
        payload_ok = await _verified(ctx, offer, sender, delivery)
    except Refusal as refusal:
        if await floods.flooding(ctx, sender):  # parked in its incident: no answer, no record
            raise PermanentFailure(f"envelope refused: {refusal.reason}") from None
        await _refuse(ctx, event, offer, sender, refusal.reason)
        raise PermanentFailure(f"envelope refused: {refusal.reason}") from None
    async with ctx.pool.acquire() as conn, conn.transaction():
        receipt = await store.receipt(conn, INBOX_CONSUMER, event.id, header.referral_id)
        if not receipt.first_time:
            return
        if receipt.known:
            return  # the same envelope sent twice under two event ids
        now = receipt.now
        # Its row as loaded: nothing below changes it (history and alarms are tables of theirs).
        referral = await store.insert(
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
            history=[
                domain.Step(Status.SENT, header.created_at, header.from_org),
                domain.Step(Status.RECEIVED, now, ctx.settings.org),
            ],
            alarms=alarms_of(ctx, header, domain.Side.RECIPIENT),
        )
        step = ReferralTransitioned(
            referral_id=header.referral_id, status=Status.RECEIVED, at=now, by_org=ctx.settings.org
        )
        # The reply to the sender, the local event and the audit record: one statement.
        await ctx.write(
            conn,
            ctx.sending(step, to=header.from_org, about=header.referral_id),
            changed_event(ctx, referral, Status.RECEIVED.value, ctx.settings.org, at=now),
            audit_entry(system(ctx), "received", header.referral_id, {"fields": payload_ok}),
        )


async def _verified(
    ctx: ServiceContext, offer: ReferralOffered, sender: str, delivery: Delivery
) -> list[str]:
    """Every check before an envelope is accepted; the payload's field names if it passes."""
    header = offer.header
    if header.from_org != sender:
        raise Refusal(RefusalReason.SENDER_MISMATCH)
    if header.to_org != ctx.settings.org:
        raise Refusal(RefusalReason.NOT_ADDRESSED_TO_US)
    # A kept copy that would refuse (a key published since, a member reinstated) is read again.
    sender_record = await roster.organisation(
        ctx,
        sender,
        enough=lambda record: roster.vouches(record, header.sender_key_id, header.created_at),
    )
    if sender_record is None:  # a newcomer whose record has not reached this replica yet: retry
        raise LookupError(f"{sender} is not in this node's directory yet")
    if sender_record.status is not MembershipStatus.ACTIVE:
        raise Refusal(RefusalReason.SENDER_NOT_ACTIVE)
    signing = roster.key_by_id(sender_record, header.sender_key_id, KeyUse.SIGNING)
    if signing is None:
        if await key_not_yet_known(ctx, delivery, sender, header.sender_key_id):
            raise LookupError(f"{sender}'s key {header.sender_key_id} is not here yet")
        raise Refusal(RefusalReason.UNKNOWN_SIGNING_KEY)
    if not roster.unexpired(signing, header.created_at, datetime.now(UTC)):
        raise Refusal(RefusalReason.EXPIRED_SIGNING_KEY)
    try:
        envelope.check_signature(offer, signing.public_key)
    except Forbidden:
        raise Refusal(RefusalReason.BAD_SIGNATURE) from None
    # Sealed for the current key, or one it replaced (sent before the sender saw the rotation).
    ours = ctx.node_keys().encryption_key(header.recipient_key_id)
    if ours is None:
        raise Refusal(RefusalReason.NOT_OUR_KEY)
    try:
        key = envelope.data_key(offer.sealed.key_for_recipient, ours)
        payload = envelope.open_payload(header, offer.sealed.nonce, offer.sealed.ciphertext, key)
    except envelope.Unreadable:
        raise Refusal(RefusalReason.UNDECRYPTABLE) from None
    try:
        forms.form_of(header.category).check(payload)
    except Invalid:
        raise Refusal(RefusalReason.PAYLOAD_OUTSIDE_FORM) from None
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
        await audit(
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
            await audit(
                ctx,
                conn,
                audit_trail.Actor(delivery.sender or "unknown", "system:referrals"),
                "refused_unknown",
                refused.referral_id,
                refused.model_dump(mode="json"),
                Outcome.FAILED,
            )
            return
        referral = await own_referral(conn, refused.referral_id, delivery, Box.OUTBOX)
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
        await changed(ctx, conn, referral, "refused", referral.other_org)
        await audit(ctx, conn, system(ctx), "refused_by_recipient", referral.referral_id)
