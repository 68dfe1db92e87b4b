"""A replica catching up takes a fetch of the hub's broadcasts in one transaction (real
PostgreSQL, the directory's handler called as the consumer calls it): in stream order, each
broadcast once, an older version never over a newer one, and a fetch with anything it must
refuse applies nothing (the consumer then takes it one by one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from deploy.demo_network import MEMBERS, DemoOrg, record
from services.directory import handlers, store
from shared import db
from shared.bus import Delivery
from shared.contracts.directory import LinkProbed, OrganisationPublished
from shared.errors import Forbidden, PermanentFailure
from shared.events import CloudEvent, make_event
from shared.federation import INBOX
from shared.service import ServiceContext
from tests.integration.apps import node_settings

AMAL, JUSOOR = (next(o for o in MEMBERS if o.org_id == name) for name in ("amal", "jusoor"))
FROM_HUB = Delivery("relais.net.secretariat.all.organisation.published", INBOX, 1, 1)


@pytest.fixture
async def directory_ctx(database_url: str) -> AsyncIterator[ServiceContext]:
    pool = await db.create_pool(database_url, max_size=4)
    # No bus: the notice to the node's copies is lost, which the directory survives (logged).
    ctx = ServiceContext(
        name="directory",
        settings=node_settings(database_url),
        pool=pool,
        bus=None,  # type: ignore[arg-type]
    )
    try:
        yield ctx
    finally:
        await pool.close()


def broadcast(org: DemoOrg, version: int) -> tuple[CloudEvent, OrganisationPublished]:
    published = record(org, version=version, node_url="http://127.0.0.1:1", keys=[])
    event = make_event(published, source="relais://hub/directory", subject=published.org_id)
    return event, published


async def versions(ctx: ServiceContext) -> dict[str, int]:
    async with ctx.pool.acquire() as conn:
        found = {}
        for org_id in ("amal", "jusoor"):
            held = await store.get_organisation(conn, org_id)
            if held is not None:
                found[org_id] = held.version
    return found


async def test_a_fetch_applies_each_broadcast_once_newest_last(
    directory_ctx: ServiceContext,
) -> None:
    amal_2 = broadcast(AMAL, 2)
    # jusoor's version 2 comes after its version 3 (sent again by a replay): never over it
    fetch = [
        broadcast(AMAL, 1),
        broadcast(JUSOOR, 1),
        amal_2,
        amal_2,
        broadcast(JUSOOR, 3),
        broadcast(JUSOOR, 2),
    ]
    await handlers.replicate_organisations(directory_ctx, [(e, p, FROM_HUB) for e, p in fetch])

    assert await versions(directory_ctx) == {"amal": 2, "jusoor": 3}
    # the same broadcasts again, one by one as a redelivery comes: nothing changes
    for event, payload in fetch:
        await handlers.replicate_organisation(directory_ctx, event, payload, FROM_HUB)
    assert await versions(directory_ctx) == {"amal": 2, "jusoor": 3}


async def test_a_fetch_with_a_record_not_from_the_hub_applies_nothing(
    directory_ctx: ServiceContext,
) -> None:
    forged = Delivery("relais.net.jusoor.all.organisation.published", INBOX, 2, 1)
    amal, jusoor = broadcast(AMAL, 1), broadcast(JUSOOR, 5)
    with pytest.raises(Forbidden):
        await handlers.replicate_organisations(
            directory_ctx, [(*amal, FROM_HUB), (*jusoor, forged)]
        )
    assert await versions(directory_ctx) == {}


async def test_a_fetch_with_another_kind_of_event_is_left_to_the_one_by_one_path(
    directory_ctx: ServiceContext,
) -> None:
    amal = broadcast(AMAL, 1)
    payload = LinkProbed(probe_id="probe-1", sent_at=datetime.now(UTC))
    probe = make_event(payload, source="relais://jusoor/directory")
    with pytest.raises(PermanentFailure):
        await handlers.replicate_organisations(
            directory_ctx, [(*amal, FROM_HUB), (probe, payload, FROM_HUB)]
        )
    assert await versions(directory_ctx) == {}
