"""The outbox relay against real servers: nothing written is lost while the broker is away."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js.api import StreamConfig
from prometheus_client import REGISTRY

from deploy import nats_server
from deploy.nats_config import NatsServerSpec
from deploy.ports import free_ports
from deploy.processes import Supervisor
from shared import outbox
from shared.bus import Bus
from shared.db import Pool, create_pool
from tests.integration.conftest import probe_event
from tests.waiting import eventually

SUBJECT = "relais.net.tout.amal.link.probed"


@pytest.fixture
async def own_broker() -> AsyncIterator[tuple[Supervisor, NatsServerSpec]]:
    """A nats-server of this test's own, which the test stops and starts."""
    root = Path(tempfile.mkdtemp(prefix="relais-outbox-"))
    client, monitor = free_ports(2)
    spec = NatsServerSpec("outbox", "hub", client, monitor, root / "js", leaf_port=free_ports(1)[0])
    supervisor = Supervisor()
    await supervisor.start(nats_server.process(spec, config_dir=root, log_dir=root))
    yield supervisor, spec
    await supervisor.stop_all()


@pytest.fixture
async def bus_and_pool(
    own_broker: tuple[Supervisor, NatsServerSpec], database_url: str
) -> AsyncIterator[tuple[Bus, Pool]]:
    """A bus on the test's own broker with a stream for the outbox's subject, and a pool."""
    _, spec = own_broker
    bus = await Bus.connect(spec.client_url, org="tout", name="outbox-test")
    await bus.ensure_stream(StreamConfig(name="OUT", subjects=["relais.net.tout.>"]))
    pool = await create_pool(database_url)
    yield bus, pool
    await bus.close()
    await pool.close()


async def unsent(pool: Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM directory.outbox WHERE sent_at IS NULL")
    return count


def backlog() -> float | None:
    return REGISTRY.get_sample_value("relais_outbox_unsent", {"service": "directory"})


async def _true(value: bool) -> bool:
    return value


async def write_events(pool: Pool, count: int) -> list[str]:
    ids = []
    for i in range(count):
        event = probe_event(str(i))
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, "directory", SUBJECT, event)
        ids.append(event.id)
    return ids


async def test_events_written_while_the_broker_is_down_arrive_once_it_returns(
    own_broker: tuple[Supervisor, NatsServerSpec], bus_and_pool: tuple[Bus, Pool], database_url: str
) -> None:
    supervisor, spec = own_broker
    bus, pool = bus_and_pool
    relay = outbox.OutboxRelay(pool, bus, "directory", database_url, poll_interval=0.2)
    running = asyncio.create_task(relay.run())
    try:
        before = await write_events(pool, 5)
        await supervisor.stop("nats-outbox")
        during = await write_events(pool, 20)
        await asyncio.sleep(1)  # the relay tries, and fails, meanwhile
        assert await unsent(pool) > 0
        # Operators see the backlog in /metrics once a publish has timed out.
        await eventually(lambda: _true((backlog() or 0) >= 20), within=20, what="a backlog")
        await supervisor.start(
            nats_server.process(
                spec, config_dir=spec.store_dir.parent, log_dir=spec.store_dir.parent
            )
        )

        async def all_sent() -> bool:
            return await unsent(pool) == 0

        await eventually(all_sent, within=20, what="every event relayed")
        await eventually(lambda: _true(backlog() == 0), within=5, what="the backlog gauge at 0")
        stored = await _stored_event_ids(bus, "OUT")
        assert sorted(stored) == sorted(before + during)  # every one, and each once
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_replay_republishes_what_was_sent_and_the_broker_keeps_one_copy(
    bus_and_pool: tuple[Bus, Pool], database_url: str
) -> None:
    bus, pool = bus_and_pool
    relay = outbox.OutboxRelay(pool, bus, "directory", database_url)
    ids = await write_events(pool, 3)
    assert await relay.publish_pending() == 3
    assert await relay.replay() == 3
    assert sorted(await _stored_event_ids(bus, "OUT")) == sorted(ids)


async def test_the_events_of_one_change_are_written_in_one_go_and_relayed_in_their_order(
    bus_and_pool: tuple[Bus, Pool], database_url: str
) -> None:
    """A change's events (its message, its local event, its audit record) written together
    keep the order they were given (newest first here, so not their ids' order)."""
    bus, pool = bus_and_pool
    relay = outbox.OutboxRelay(pool, bus, "directory", database_url)
    given = [probe_event(str(i)) for i in range(3)][::-1]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add_all(conn, "directory", [(SUBJECT, event) for event in given])
    rows = await pool.fetch(
        "SELECT event_id::text FROM directory.outbox WHERE event_id = ANY($1::uuid[]) ORDER BY seq",
        [event.id for event in given],
    )
    assert [r["event_id"] for r in rows] == [event.id for event in given]
    assert await relay.publish_pending() == 3
    assert sorted(await _stored_event_ids(bus, "OUT")) == sorted(event.id for event in given)


async def _stored_event_ids(bus: Bus, stream: str) -> list[str]:
    info = await bus.js.stream_info(stream)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await bus.js.get_msg(stream, seq)
        assert message.headers is not None
        ids.append(message.headers["Nats-Msg-Id"])
    return ids
