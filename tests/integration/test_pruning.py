"""Pruning on a real PostgreSQL (and a real nats-server for redeliveries): what is older than
the retention window goes, in batches; what can still come again is recognised; what was
never sent stays, however old."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from shared import outbox, processed
from shared.bus import Bus, Delivery, Subscription
from shared.contracts.directory import LinkProbed
from shared.db import Pool, create_pool
from shared.events import CloudEvent, Payload
from shared.pruning import Pruner, minimum_window
from shared.service import ServiceContext
from shared.settings import NodeSettings
from shared.supervision import TaskState
from tests.integration.conftest import OwnStream, probe_event
from tests.waiting import eventually

SCHEMA = "directory"
SUBJECT = "relais.net.tout.amal.link.probed"
WINDOW = minimum_window()
AGE = "now() - make_interval(secs => $1::float8)"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url)
    yield pool
    await pool.close()


def pruned(table: str) -> float:
    value = REGISTRY.get_sample_value(
        "relais_pruned_rows_total", {"service": SCHEMA, "table": table}
    )
    return value or 0.0


async def sent_event(pool: Pool, *, sent_ago: float | None, created_ago: float = 0.0) -> str:
    """An outbox row written ``created_ago`` seconds ago, sent ``sent_ago`` seconds ago (or
    never, ``None``); returns its event id."""
    event = probe_event()
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, SCHEMA, SUBJECT, event)
        await conn.execute(
            f"UPDATE {SCHEMA}.outbox SET created_at = {AGE} WHERE event_id = $2",
            created_ago,
            event.id,
        )
        if sent_ago is not None:
            await conn.execute(
                f"UPDATE {SCHEMA}.outbox SET sent_at = {AGE} WHERE event_id = $2",
                sent_ago,
                event.id,
            )
    return event.id


async def processed_id(pool: Pool, *, ago: float) -> str:
    event = probe_event()
    async with pool.acquire() as conn:
        assert await processed.first_time(conn, SCHEMA, "worker", event.id)
        await conn.execute(
            f"UPDATE {SCHEMA}.processed SET processed_at = {AGE} WHERE event_id = $2",
            ago,
            event.id,
        )
    return event.id


async def outbox_ids(pool: Pool) -> set[str]:
    return {str(r["event_id"]) for r in await pool.fetch(f"SELECT event_id FROM {SCHEMA}.outbox")}


async def processed_ids(pool: Pool) -> set[str]:
    rows = await pool.fetch(f"SELECT event_id FROM {SCHEMA}.processed")
    return {str(r["event_id"]) for r in rows}


@pytest.mark.parametrize(
    ("age", "applied"),
    [
        pytest.param(WINDOW - 60, 1, id="inside the window: ignored"),
        # The control: had the id gone, the same redelivery would be applied again.
        pytest.param(WINDOW + 60, 2, id="past the window: applied again"),
    ],
)
async def test_a_redelivery_inside_the_window_is_not_applied_twice(
    hub_bus: Bus, stream: OwnStream, pool: Pool, age: float, applied: int
) -> None:
    await pool.execute("CREATE TABLE public.applied (event_id uuid NOT NULL)")
    pruner = Pruner(pool, SCHEMA, WINDOW)
    deliveries: list[int] = []

    async def handler(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
        deliveries.append(delivery.num_delivered)
        async with pool.acquire() as conn, conn.transaction():
            if await processed.first_time(conn, SCHEMA, "worker", event.id):
                await conn.execute("INSERT INTO public.applied VALUES ($1)", event.id)
        if delivery.num_delivered == 1:
            # The effect is committed but the ack is lost: the broker delivers it again,
            # after the id has aged by ``age`` and the pruner has run.
            await pool.execute(
                f"UPDATE {SCHEMA}.processed SET processed_at = {AGE} WHERE event_id = $2",
                age,
                event.id,
            )
            await pruner.prune()
            raise ConnectionError("the ack was lost")

    await hub_bus.subscribe(
        Subscription.routing(stream.name, "worker", {LinkProbed: handler}, retry_delays=(0.1,))
    )
    event = probe_event()
    await hub_bus.publish(stream.subject(), event)

    async def delivered_twice() -> bool:
        return deliveries == [1, 2]

    await eventually(delivered_twice, within=10, what="the event delivered again")
    await asyncio.sleep(0.3)  # the second delivery's transaction
    count = await pool.fetchval("SELECT count(*) FROM public.applied WHERE event_id = $1", event.id)
    assert count == applied


async def test_what_is_older_than_the_window_goes_and_unsent_events_never_do(pool: Pool) -> None:
    old_sent = await sent_event(pool, sent_ago=2 * WINDOW, created_ago=2 * WINDOW)
    recent_sent = await sent_event(pool, sent_ago=WINDOW - 60, created_ago=3 * WINDOW)
    just_sent = await sent_event(pool, sent_ago=0)
    # Written ten years ago and never acknowledged by the broker: still to be sent.
    never_sent = await sent_event(pool, sent_ago=None, created_ago=10 * 365 * 86400)
    old_id = await processed_id(pool, ago=WINDOW + 60)
    recent_id = await processed_id(pool, ago=WINDOW - 60)
    before = pruned("outbox"), pruned("processed")

    counts = await Pruner(pool, SCHEMA, WINDOW).prune()

    assert counts == {"outbox": 1, "processed": 1}
    assert await outbox_ids(pool) == {recent_sent, just_sent, never_sent}
    assert old_sent not in await outbox_ids(pool)
    assert await processed_ids(pool) == {recent_id}
    assert old_id not in await processed_ids(pool)
    assert (pruned("outbox"), pruned("processed")) == (before[0] + 1, before[1] + 1)
    # The unsent one is still what the relay would send.
    unsent = await pool.fetch(f"SELECT event_id FROM {SCHEMA}.outbox WHERE sent_at IS NULL")
    assert [str(r["event_id"]) for r in unsent] == [never_sent]


async def test_many_rows_go_in_batches_past_rows_another_transaction_holds(pool: Pool) -> None:
    await pool.execute(
        f"INSERT INTO {SCHEMA}.outbox (event_id, subject, event, created_at, sent_at)"
        f" SELECT gen_random_uuid(), $2, '{{}}'::jsonb, {AGE}, {AGE}"
        " FROM generate_series(1, 2500)",
        2 * WINDOW,
        SUBJECT,
    )
    never_sent = await sent_event(pool, sent_ago=None, created_ago=2 * WINDOW)
    held = await sent_event(pool, sent_ago=2 * WINDOW)
    pruner = Pruner(pool, SCHEMA, WINDOW, batch=1000)
    async with pool.acquire() as holder, holder.transaction():
        # A transaction (a replay, a relay) holds one old row: the pruner does not wait for it.
        await holder.execute(f"SELECT 1 FROM {SCHEMA}.outbox WHERE event_id = $1 FOR UPDATE", held)
        counts = await asyncio.wait_for(pruner.prune(), 10)
        assert counts["outbox"] == 2500
        assert await outbox_ids(pool) == {held, never_sent}
    assert (await pruner.prune())["outbox"] == 1
    assert await outbox_ids(pool) == {never_sent}


async def test_pruning_runs_as_a_supervised_background_task(pool: Pool, hub_bus: Bus) -> None:
    settings = NodeSettings.model_validate(
        {
            "node_id": "sanad",
            "org": "sanad",
            "secret_key": "s" * 20,
            "nats_url": "nats://127.0.0.1:1",
            "database_url": "postgresql://x",
        }
    )
    context = ServiceContext(name=SCHEMA, settings=settings, pool=pool, bus=hub_bus)
    old = await sent_event(pool, sent_ago=2 * WINDOW)
    context.background("pruning", Pruner(pool, SCHEMA, WINDOW, interval=0.1).run)
    try:

        async def gone() -> bool:
            return old not in await outbox_ids(pool)

        await eventually(gone, within=10, what="the old sent row pruned in the background")
        newer_old = await sent_event(pool, sent_ago=2 * WINDOW)

        async def also_gone() -> bool:
            return newer_old not in await outbox_ids(pool)

        await eventually(also_gone, within=10, what="pruned again at the next round")
        task = context.supervisor.tasks[f"{SCHEMA}: pruning"]
        assert (task.state, task.restarts) == (TaskState.RUNNING, 0)
    finally:
        await context.supervisor.stop()
