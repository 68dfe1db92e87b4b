"""The hub's network log takes a fetch of ``ROUTER`` events in one transaction (real
PostgreSQL): in stream order, each event once, with the same rows and facts as one by one."""

from __future__ import annotations

from datetime import timedelta

from services.audit import handlers
from shared.bus import Delivery
from shared.contracts.referrals import ReferralTransitioned, Status
from shared.events import CloudEvent, make_event, new_event_id
from shared.federation import ROUTER
from shared.service import ServiceContext
from tests.integration.audit_fixtures import T0, hub_audit_ctx

__all__ = ["hub_audit_ctx"]  # the fixture, used by name


def step(referral_id: str, status: Status, minutes: int) -> tuple[CloudEvent, ReferralTransitioned]:
    payload = ReferralTransitioned(
        referral_id=referral_id, status=status, at=T0 + timedelta(minutes=minutes), by_org="amal"
    )
    return make_event(payload, source="relais://amal/referrals", subject=referral_id), payload


DELIVERY = Delivery("relais.net.amal.sanad.referral.transitioned", ROUTER, 1, 1)


async def facts(ctx: ServiceContext, referral_id: str) -> tuple[int, str, bool, bool]:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetchval(
            "SELECT count(*) FROM audit.network_event WHERE object = $1", f"referral:{referral_id}"
        )
        fact = await conn.fetchrow(
            "SELECT status, answered_at, completed_at FROM audit.referral_fact"
            " WHERE referral_id = $1",
            referral_id,
        )
    assert fact is not None
    return rows, fact["status"], fact["answered_at"] is not None, fact["completed_at"] is not None


async def test_a_fetch_is_logged_in_order_each_event_once(hub_audit_ctx: ServiceContext) -> None:
    first, second = new_event_id(), new_event_id()
    accepted = step(first, Status.ACCEPTED, 1)
    items = [
        accepted,
        step(second, Status.ACCEPTED, 2),
        step(first, Status.IN_PROGRESS, 3),
        accepted,  # delivered twice within the fetch
        step(first, Status.COMPLETED, 4),
    ]
    await handlers.log_network_batch(hub_audit_ctx, [(e, p, DELIVERY) for e, p in items])

    assert await facts(hub_audit_ctx, first) == (3, "completed", True, True)
    assert await facts(hub_audit_ctx, second) == (1, "accepted", True, False)


async def test_a_fetch_and_the_same_events_one_by_one_log_the_same(
    hub_audit_ctx: ServiceContext,
) -> None:
    together, alone = new_event_id(), new_event_id()
    for referral_id, batched in ((together, True), (alone, False)):
        items = [
            step(referral_id, Status.ACCEPTED, 1),
            step(referral_id, Status.COMPLETED, 2),
        ]
        if batched:
            await handlers.log_network_batch(hub_audit_ctx, [(e, p, DELIVERY) for e, p in items])
        else:
            for event, payload in items:
                await handlers.log_network(hub_audit_ctx, event, payload, DELIVERY)
        # and again, one by one: a redelivery after the batch adds nothing
        for event, payload in items:
            await handlers.log_network(hub_audit_ctx, event, payload, DELIVERY)

    assert await facts(hub_audit_ctx, together) == await facts(hub_audit_ctx, alone)
    assert await facts(hub_audit_ctx, together) == (2, "completed", True, True)
