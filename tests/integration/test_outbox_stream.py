"""A node's OUTBOX keeps what it holds across restarts of the node and of its nats-server.

Each start of a node declares its streams again, the OUTBOX with a ``first_seq`` from the clock
(shared/federation.py, for a node restored on an empty store). The server stores that value
even when it does not apply it, and on its next start deletes every message below it: a node
restarted, then its nats-server, lost every event its hub had not copied yet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deploy import nats_server
from deploy.processes import Supervisor
from shared.bus import Bus
from shared.contracts.directory import LinkProbed
from shared.events import registry
from shared.federation import OUTBOX, fresh_sequence, node_streams
from tests.integration.conftest import probe_event
from tests.integration.test_launcher import healthy, nats_spec
from tests.waiting import eventually


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(max_backoff=1)
    yield supervisor
    await supervisor.stop_all()


async def declare_outbox(bus: Bus) -> None:
    """What a node's start does to its OUTBOX (shared/runtime.py)."""
    for config in node_streams(
        "sanad", hub_domain="hub", is_hub=False, outbox_first_seq=fresh_sequence(time.time_ns())
    ):
        if config.name == OUTBOX:
            await bus.ensure_stream(config)


async def test_unsent_events_survive_a_node_restart_then_a_nats_server_restart(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    spec = nats_spec(tmp_path)
    managed = await supervisor.start(
        nats_server.process(spec, config_dir=tmp_path, log_dir=tmp_path)
    )
    url = f"nats://127.0.0.1:{spec.client_port}"
    subject = registry.for_payload(LinkProbed).subject(sender="sanad", recipient="amal")

    bus = await Bus.connect(url, org="sanad", name="test")
    try:
        await declare_outbox(bus)
        for n in range(5):
            await bus.publish(subject, probe_event(f"p{n}"))
        await asyncio.sleep(0.01)  # the next start's clock is later, as it always is
        await declare_outbox(bus)  # the node restarts; nothing has been copied by the hub
    finally:
        await bus.close()

    await supervisor.kill(f"nats-{spec.name}")

    async def restarted() -> bool:
        return managed.restarts == 1 and await healthy(spec)

    await eventually(restarted, within=15, what="the nats-server restarted")

    bus = await Bus.connect(url, org="sanad", name="test")
    try:
        info = await bus.js.stream_info(OUTBOX)
        await declare_outbox(bus)
        again = await bus.js.stream_info(OUTBOX)
    finally:
        await bus.close()
    assert info.state.messages == 5, info.state
    assert again.state.messages == 5 and again.state.first_seq == info.state.first_seq
