"""Fixtures for tests that speak to the real broker: a bus on the hub's nats-server and a
stream of the test's own, on subjects no node uses."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from nats.js.api import StreamConfig

from deploy.network import Network
from shared.bus import Bus
from shared.contracts.directory import LinkProbed
from shared.events import CloudEvent, make_event, registry
from shared.federation import DEADLETTER, node_streams


@dataclass
class OwnStream:
    """A stream of one test: ``relais.net.<sender>.>`` for a sender token no node has."""

    name: str
    sender: str

    def subject(self, recipient: str = "amal") -> str:
        return registry.for_payload(LinkProbed).subject(sender=self.sender, recipient=recipient)


def probe_event(probe_id: str = "p") -> CloudEvent:
    return make_event(
        LinkProbed(probe_id=probe_id, sent_at=datetime.now(UTC)), source="relais://test/t"
    )


@pytest.fixture
async def hub_bus(network: Network) -> AsyncIterator[Bus]:
    bus = await Bus.connect(network.hub.nats_url, org="secretariat", name="test")
    for config in node_streams("secretariat", hub_domain="hub", is_hub=True):
        if config.name == DEADLETTER:
            await bus.ensure_stream(config)
    yield bus
    await bus.close()


@pytest.fixture
async def stream(hub_bus: Bus) -> AsyncIterator[OwnStream]:
    sender = f"t{secrets.token_hex(4)}"
    name = f"T_{sender}"
    await hub_bus.ensure_stream(StreamConfig(name=name, subjects=[f"relais.net.{sender}.>"]))
    yield OwnStream(name, sender)
    await hub_bus.js.delete_stream(name)
