"""Consent: revoked by the sender, or run out; the recipient's node then destroys its copy of
the data key and confirms."""

from __future__ import annotations

from services.referrals import attachment_store, store
from services.referrals.handlers.common import (
    actor_of,
    applying_once,
    audit,
    changed,
    check_caller,
    load,
    system,
)
from shared.auth import Principal
from shared.bus import Delivery
from shared.contracts.referrals import (
    Box,
    ConsentRevoked,
    KeyDestroyed,
)
from shared.db import Connection
from shared.errors import Conflict, Forbidden
from shared.events import CloudEvent
from shared.service import ServiceContext


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
        # The files go on both nodes: here now, at the recipient with its copy of the data key.
        await attachment_store.erase(conn, [referral_id])
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
        await changed(ctx, conn, referral, "consent_revoked", ctx.settings.org)
        await audit(ctx, conn, actor_of(principal), "consent_revoked", referral_id)


async def destroy_key(
    ctx: ServiceContext, event: CloudEvent, revoked: ConsentRevoked, delivery: Delivery
) -> None:
    """At the recipient: the person withdrew consent; erase this node's copy of the data key,
    and confirm."""
    async with applying_once(ctx, event, delivery, revoked.referral_id, Box.INBOX) as applied:
        if applied is None:
            return
        conn, referral = applied
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
    await changed(ctx, conn, referral, why, ctx.settings.org)
    await audit(ctx, conn, system(ctx), "key_destroyed", referral.referral_id, {"why": why})


async def confirm_key_destroyed(
    ctx: ServiceContext, event: CloudEvent, destroyed: KeyDestroyed, delivery: Delivery
) -> None:
    async with applying_once(ctx, event, delivery, destroyed.referral_id, Box.OUTBOX) as applied:
        if applied is None:
            return
        conn, referral = applied
        await store.touch(conn, referral.referral_id, consent_state="key_destroyed")
        await store.add_history(
            conn,
            referral.referral_id,
            change="key_destroyed",
            status=None,
            at=destroyed.at,
            by_org=referral.other_org,
        )
        await changed(ctx, conn, referral, "key_destroyed", referral.other_org)
        await audit(ctx, conn, system(ctx), "key_destroyed_confirmed", referral.referral_id)
