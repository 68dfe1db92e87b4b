"""The deadline clock's work: reminders, breaches (escalated to the secretariat), expiry, and
the erasure of payloads past retention."""

from __future__ import annotations

from services.referrals import domain, store
from services.referrals.handlers.common import (
    audit,
    changed,
    load,
    system,
)
from shared.contracts.referrals import (
    ReferralDeadline,
    ReferralEscalated,
    ReferralTransitioned,
    Status,
)
from shared.db import Connection
from shared.service import ServiceContext


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
        await audit(
            ctx, conn, system(ctx), f"{alarm.deadline.value}_breached", referral.referral_id
        )


async def _expire(ctx: ServiceContext, conn: Connection, referral: store.Referral) -> None:
    now = await store.now(conn)
    org = ctx.settings.org
    step = domain.Step(Status.EXPIRED, now, org)
    updated = await store.set_status(conn, referral.referral_id, step)
    told = ReferralTransitioned(
        referral_id=referral.referral_id, status=Status.EXPIRED, at=now, by_org=org
    )
    await ctx.send(conn, told, to=referral.other_org, about=referral.referral_id)
    await changed(ctx, conn, updated, Status.EXPIRED.value, org, at=now)
    await audit(ctx, conn, system(ctx), Status.EXPIRED.value, referral.referral_id)


async def shred_expired_payloads(ctx: ServiceContext) -> list[str]:
    """Crypto-shred the payloads of referrals closed longer ago than the retention period."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        erased = await store.shred_closed(conn, ctx.settings.referral_retention_days)
        for referral_id in erased:
            await audit(ctx, conn, system(ctx), "payload_shredded", referral_id)
    return erased
