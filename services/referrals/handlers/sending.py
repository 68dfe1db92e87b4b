"""Sending a referral: checked against its category's form and its legal basis, sealed for
the recipient (and the sender), signed, and put in the outbox with its history and alarms."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.referrals import domain, envelope, forms, roster, store
from services.referrals.handlers.common import (
    actor_of,
    alarms_of,
    audit,
    audit_entry,
    changed_event,
    check_caller,
    load,
)
from shared.auth import Principal
from shared.contracts.directory import CODE, ORG_ID, KeyUse
from shared.contracts.referrals import (
    REFERRAL_ID,
    Box,
    Consent,
    Header,
    LegalBasis,
    Status,
    Urgency,
)
from shared.crypto import key_id
from shared.db import Connection
from shared.errors import Conflict, Invalid
from shared.events import new_event_id
from shared.service import ServiceContext


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
    follows: str | None = Field(
        default=None,
        pattern=REFERRAL_ID,
        description="sending again: the id of this organisation's earlier referral of the "
        "person, declined, expired or refused. Kept on this node only: the new recipient is "
        "not told of it",
    )


def _request_digest(new: NewReferral) -> str:
    return hashlib.sha256(new.model_dump_json().encode()).hexdigest()


async def create(
    ctx: ServiceContext, principal: Principal, new: NewReferral, idempotency_key: str | None
) -> store.Referral:
    """Seal, sign and send a new referral; returns it as written (for a retried key, the
    earlier one as it stands): the caller answers without reading it again."""
    check_caller(ctx, principal)
    caller = f"{principal.org}/{principal.subject}"
    digest = _request_digest(new)
    if idempotency_key is not None:
        async with ctx.pool.acquire() as conn:
            earlier = await store.remembered(conn, caller, idempotency_key)
            if earlier is not None:
                return await load(conn, _same_request(earlier, digest))
    form = forms.form_of(new.category)
    payload = form.check(new.payload)
    domain.check_legal_basis(new.legal_basis, new.consent is not None)
    recipient = await roster.recipient(ctx, new.to_org, new.category)
    keys = ctx.node_keys()
    async with ctx.pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            # Two concurrent retries: the second waits here for the first to commit.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"{caller}/{idempotency_key}"
            )
            earlier = await store.remembered(conn, caller, idempotency_key)
            if earlier is not None:
                return await load(conn, _same_request(earlier, digest))
        if new.follows is not None:
            await _check_follows(conn, new.follows)
        now = await store.now(conn)
        domain.check_consent_current(new.consent.expires_at if new.consent else None, now)
        recipient_key = roster.current_key(recipient, KeyUse.ENCRYPTION, now)
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
        referral = await store.insert(
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
            follows=new.follows,
            history=[domain.Step(Status.SENT, now, ctx.settings.org)],
            history_by=principal.subject,
            alarms=alarms_of(ctx, header, domain.Side.SENDER),
        )
        if new.follows is not None:
            await _link(ctx, conn, principal, new.follows, referral_id, now)
        if idempotency_key is not None:
            await store.remember(conn, caller, idempotency_key, digest, referral_id)
        if new.follows is not None:  # linking wrote the new row again
            referral = await load(conn, referral_id)
        # The envelope, the local event and the audit record: one statement.
        await ctx.write(
            conn,
            ctx.sending(offer, to=new.to_org, about=referral_id),
            changed_event(ctx, referral, Status.SENT.value, ctx.settings.org, at=now),
            audit_entry(actor_of(principal), "sent", referral_id, offer.model_dump(mode="json")),
        )
    return referral


async def _check_follows(conn: Connection, earlier_id: str) -> None:
    """The referral a new one follows: this organisation's own, sent by it, and ended
    without the service (locked, so that two sends again see each other)."""
    earlier = await store.get(conn, earlier_id, for_update=True)
    if earlier is None:
        raise Invalid("this organisation has no referral with this id", field="follows")
    domain.check_send_again(earlier.side, earlier.status, earlier.refused_reason is not None)


async def _link(
    ctx: ServiceContext,
    conn: Connection,
    principal: Principal,
    earlier_id: str,
    referral_id: str,
    now: datetime,
) -> None:
    """Both referrals' histories point at each other, and the sending again is audited."""
    for on, change, link in (
        (referral_id, "follows", earlier_id),
        (earlier_id, "sent_again", referral_id),
    ):
        await store.add_history(
            conn,
            on,
            change=change,
            status=None,
            at=now,
            by_org=ctx.settings.org,
            by_actor=principal.subject,
            link=link,
        )
    await audit(
        ctx,
        conn,
        actor_of(principal),
        "sent_again",
        earlier_id,
        {"follows": earlier_id, "referral_id": referral_id},
    )


def _same_request(earlier: tuple[str, str], digest: str) -> str:
    referral_id, request = earlier
    if request != digest:
        raise Conflict(
            "this Idempotency-Key was already used for a different referral",
            field="idempotency_key",
        )
    return referral_id
