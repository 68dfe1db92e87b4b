"""The conversation of a referral: messages written at either organisation, sealed under the
referral's data key, signed by the writer's node and told to the other node; read decrypted
here by a person of the organisation, each read audited and the thread marked read. A message
that does not verify at the other node is refused there, and its writer's node told why."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.referrals import domain, envelope, roster, store
from services.referrals.handlers.common import (
    CASE_ROLES,
    SERVICE,
    actor_of,
    applying_once,
    audit,
    changed,
    check_caller,
    data_key,
    key_not_yet_known,
    load,
)
from shared import audit_trail
from shared.auth import Principal
from shared.bus import Delivery
from shared.contracts.audit import Outcome
from shared.contracts.directory import KeyUse
from shared.contracts.referrals import (
    MESSAGE_MAX_CHARS,
    MessageRefusal,
    ReferralMessaged,
    ReferralMessageRefused,
)
from shared.crypto import key_id
from shared.errors import Conflict, Forbidden, PermanentFailure
from shared.events import CloudEvent, new_event_id
from shared.service import ServiceContext

WITHDRAWN = ("revoked", "key_destroyed")  # consent states that end the conversation


def author_role(principal: Principal) -> str:
    """The role a message is signed with: the case role the author holds."""
    held = [role for role in CASE_ROLES if principal.has(role)]
    return held[-1].value if held else "caseworker"


def conversation_grace(ctx: ServiceContext) -> timedelta:
    """How long after closing the two organisations may still write and attach files."""
    return timedelta(days=ctx.settings.referral_conversation_grace_days)


async def write_message(
    ctx: ServiceContext, principal: Principal, referral_id: str, text: str
) -> dict[str, Any]:
    """A person's message on a referral of their organisation: kept sealed here and sent,
    sealed and signed, to the other organisation's node (through the outbox: it waits there
    while that node is away). Returns the message as its author reads it."""
    check_caller(ctx, principal)
    domain.check_message_text(text, MESSAGE_MAX_CHARS)
    keys = ctx.node_keys()
    async with ctx.pool.acquire() as conn, conn.transaction():
        referral = await load(conn, referral_id, for_update=True)
        now = await store.now(conn)
        domain.check_conversation_open(referral.closed_at, now, conversation_grace(ctx))
        if referral.consent_state in WITHDRAWN:
            raise Conflict("consent was withdrawn: the conversation ended", field="text")
        key = data_key(ctx, referral)  # 409 once erased: nothing can be sealed any more
        org = ctx.settings.org
        message_id = new_event_id()
        role = author_role(principal)
        sealed = envelope.seal_message(
            key, text, referral_id=referral_id, message_id=message_id, by_org=org
        )
        told = envelope.sign_message(
            keys,
            {
                "referral_id": referral_id,
                "message_id": message_id,
                "by_org": org,
                "by_role": role,
                "at": now.isoformat(),
                "sealed_text": sealed,
                "sender_key_id": key_id(keys.signing_public),
            },
        )
        await store.add_message(
            conn,
            message_id=message_id,
            referral_id=referral_id,
            by_org=org,
            by_role=role,
            by_actor=principal.subject,
            at=now,
            sealed_text=sealed,
            sender_key_id=told.sender_key_id,
            signature=told.signature,
            unread=False,
        )
        await ctx.send(conn, told, to=referral.other_org, about=referral_id)
        await audit(
            ctx,
            conn,
            actor_of(principal),
            "message_sent",
            referral_id,
            {"message_id": message_id, "text": text},
        )
    return {
        "message_id": message_id,
        "by_org": org,
        "by_role": role,
        "at": now,
        "text": text,
        "mine": True,
        "erased": False,
        "refused_reason": None,
    }


async def receive_message(
    ctx: ServiceContext, event: CloudEvent, message: ReferralMessaged, delivery: Delivery
) -> None:
    """At the other node: a message checked against its writer's key in the directory, kept
    sealed (once, however often it comes), counted unread, and the node's staff told."""
    sender_record = await roster.organisation(
        ctx,
        delivery.sender or message.by_org,
        enough=lambda record: roster.vouches(record, message.sender_key_id, message.at),
    )
    if sender_record is None:  # its record has not reached this replica yet: retry
        raise LookupError(f"{delivery.sender} is not in this node's directory yet")
    signing = roster.key_by_id(sender_record, message.sender_key_id, KeyUse.SIGNING)
    if signing is None and await key_not_yet_known(
        ctx, delivery, sender_record.org_id, message.sender_key_id
    ):
        raise LookupError(f"{sender_record.org_id}'s key {message.sender_key_id} is not here yet")
    refusal: MessageRefusal | None = None
    if signing is None:
        refusal = MessageRefusal.UNKNOWN_SIGNING_KEY
    else:
        try:
            envelope.check_message_signature(message, signing.public_key)
        except Forbidden:
            refusal = MessageRefusal.BAD_SIGNATURE
    if refusal is not None:
        await _refuse(ctx, event, message, delivery, refusal)
        raise PermanentFailure(f"message {message.message_id}: {refusal.value}")
    async with applying_once(ctx, event, delivery, message.referral_id) as applied:
        if applied is None:
            return
        conn, referral = applied
        if message.by_org != delivery.sender:
            raise PermanentFailure(f"{delivery.sender} wrote a message in another's name")
        added = await store.add_message(
            conn,
            message_id=message.message_id,
            referral_id=referral.referral_id,
            by_org=message.by_org,
            by_role=message.by_role,
            by_actor=None,
            at=message.at,
            # This node's key destroyed (consent withdrawn): nothing it could open is kept.
            sealed_text=None if referral.sealed_key is None else message.sealed_text,
            sender_key_id=message.sender_key_id,
            signature=message.signature,
            unread=True,
        )
        if not added:
            return  # the same message under another event id
        updated = await load(conn, referral.referral_id)
        await changed(ctx, conn, updated, "messaged", message.by_org)
        await audit(
            ctx,
            conn,
            audit_trail.Actor(message.by_org, "system:referrals"),
            "message_received",
            referral.referral_id,
            {"message_id": message.message_id},
        )


async def _refuse(
    ctx: ServiceContext,
    event: CloudEvent,
    message: ReferralMessaged,
    delivery: Delivery,
    reason: MessageRefusal,
) -> None:
    """Tell the writer's node, once, that its message was refused here and why (through the
    outbox, in the transaction that records the event as applied); nothing of it is kept."""
    async with applying_once(ctx, event, delivery, message.referral_id) as applied:
        if applied is None:
            return  # told before (a redelivery), or a referral refused here: nobody to tell
        conn, referral = applied
        now = await store.now(conn)
        refused = ReferralMessageRefused(
            referral_id=referral.referral_id, message_id=message.message_id, reason=reason, at=now
        )
        await ctx.send(conn, refused, to=referral.other_org, about=referral.referral_id)
        await audit(
            ctx,
            conn,
            audit_trail.Actor(referral.other_org, "system:referrals"),
            "message_refused",
            referral.referral_id,
            {"message_id": message.message_id, "reason": reason.value},
            Outcome.FAILED,
        )


async def record_message_refusal(
    ctx: ServiceContext, event: CloudEvent, refused: ReferralMessageRefused, delivery: Delivery
) -> None:
    """At the writer's node: the other node refused one of this node's messages; its copy
    says so. A refusal of a message this node did not write is a forgery."""
    async with applying_once(ctx, event, delivery, refused.referral_id) as applied:
        if applied is None:
            return
        conn, referral = applied
        changed_here = await store.refuse_message(
            conn, referral.referral_id, refused.message_id, ctx.settings.org, refused.reason.value
        )
        if changed_here is None:
            raise PermanentFailure(f"{delivery.sender} refused a message this node did not send")
        if not changed_here:
            return
        await audit(
            ctx,
            conn,
            audit_trail.system(ctx.settings.org, SERVICE),
            "message_not_delivered",
            referral.referral_id,
            {"message_id": refused.message_id, "reason": refused.reason.value},
            Outcome.FAILED,
        )


async def read_messages(
    ctx: ServiceContext, principal: Principal, referral_id: str
) -> dict[str, Any]:
    """A referral's thread, decrypted for a person of the organisation, oldest first; the read
    is audited with what it showed, and the thread is read for the organisation."""
    check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn, conn.transaction():
        referral = await load(conn, referral_id, for_update=True)
        kept = await store.messages(conn, referral_id)
        try:
            key: bytes | None = data_key(ctx, referral)
        except Conflict:
            key = None  # erased: who wrote when stays, the words are gone
        org = ctx.settings.org
        shown = []
        for message in kept:
            text = None
            if key is not None and message.sealed_text is not None:
                text = envelope.open_message(
                    key,
                    message.sealed_text,
                    referral_id=referral_id,
                    message_id=message.message_id,
                    by_org=message.by_org,
                )
            shown.append(
                {
                    "message_id": message.message_id,
                    "by_org": message.by_org,
                    "by_role": message.by_role,
                    "at": message.at,
                    "text": text,
                    "mine": message.by_org == org,
                    "erased": text is None,
                    "refused_reason": message.refused_reason,
                }
            )
        unread = await store.mark_read(conn, referral_id)
        now = await store.now(conn)
        if kept:  # an empty thread shows nobody's words: nothing to record
            await audit(
                ctx,
                conn,
                actor_of(principal),
                "messages_read",
                referral_id,
                {"messages": [(m["message_id"], m["text"]) for m in shown]},
                Outcome.OK if key is not None else Outcome.REFUSED,
            )
    return {
        "referral_id": referral_id,
        "messages": shown,
        "unread": unread,
        "may_write": key is not None
        and referral.consent_state not in WITHDRAWN
        and domain.conversation_open(referral.closed_at, now, conversation_grace(ctx)),
        "max_chars": MESSAGE_MAX_CHARS,
    }
