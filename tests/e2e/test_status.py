"""``relais status`` tells the store-and-forward story: a node stopped through the demo's
control channel, what waits at the hub for it, and the backlog gone once it is back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.cli_status import collect
from deploy.demo_control import DemoControl, ask
from deploy.network import Network
from tests.e2e.test_referrals import send
from tests.waiting import eventually

Creds = dict[str, Any]


@pytest.fixture
async def control(
    network: Network, running_network: Creds
) -> AsyncIterator[tuple[DemoControl, list[str], Path]]:
    """The demo's control channel on the test network, and its credentials file beside it."""
    told: list[str] = []
    channel = DemoControl(network, say=told.append)
    credentials = network.root / "credentials.json"
    credentials.write_text(json.dumps(running_network))
    await channel.serve()
    try:
        yield channel, told, credentials
    finally:
        for node in list(channel.stopped):  # a failed test leaves no node stopped
            await ask(network.root, {"do": "start", "node": node})
        await channel.close()


async def status_of(credentials: Path, running_network: Creds) -> dict[str, Any]:
    return await collect(credentials, running_network["nodes"])


async def test_status_shows_every_node_linked_caught_up_with_its_processes(
    control: tuple[DemoControl, list[str], Path],
) -> None:
    _, _, credentials = control
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["status", "--json", "--credentials", str(credentials)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["launcher"] == "reachable"
    hub, sanad = report["nodes"]["hub"], report["nodes"]["sanad"]
    assert hub["link"] == {"state": "serving", "leaves": ["amal", "sanad"]}
    assert sanad["link"]["state"] == "up" and sanad["ready"]
    assert {p["name"]: p["state"] for p in sanad["processes"]} == {
        "nats-sanad": "running",
        "node-sanad": "running",
    }
    assert sanad["dead_letters"] == 0
    assert {"INBOX", "LOCAL"} <= {c["stream"] for c in sanad["consumers"]}
    assert all(isinstance(c["pending"], int) for c in sanad["consumers"])
    assert set(sanad["outbound"]["outbox_unsent"]) >= {"referrals", "directory"}
    people = await asyncio.to_thread(
        CliRunner().invoke, app, ["status", "--credentials", str(credentials)]
    )
    assert "sanad" in people.output and people.exit_code == 0


async def test_status_counts_what_waits_for_a_stopped_node_and_sees_it_drain(
    control: tuple[DemoControl, list[str], Path], running_network: Creds, network: Network
) -> None:
    _, told, credentials = control
    answer = await ask(network.root, {"do": "stop", "node": "amal"})
    assert answer == {"ok": True, "node": "amal", "state": "stopped"}
    sent = [await send(running_network) for _ in range(3)]

    async def waiting_at_hub() -> bool:
        amal = (await status_of(credentials, running_network))["nodes"]["amal"]
        return bool(amal["inbound"]["waiting_at_hub"] == 3)

    await eventually(waiting_at_hub, within=30, what="status counts amal's 3 waiting referrals")
    amal = (await status_of(credentials, running_network))["nodes"]["amal"]
    assert not amal["ready"] and amal["link"]["state"] == "down"
    assert {p["state"] for p in amal["processes"]} == {"stopped"}
    assert amal["unreachable"]  # it says what it could not reach
    assert amal["inbound"]["counted_from"] == "node at its stop"
    refused = await ask(network.root, {"do": "stop", "node": "nowhere"})
    assert refused["ok"] is False and "nowhere" in refused["error"]

    answer = await ask(network.root, {"do": "start", "node": "amal"})
    assert answer == {"ok": True, "node": "amal", "state": "running"}

    async def drained() -> bool:
        amal = (await status_of(credentials, running_network))["nodes"]["amal"]
        return bool(amal["ready"] and amal["inbound"]["waiting_at_hub"] == 0)

    await eventually(drained, within=60, what="amal's inbound backlog drains")
    # The demo's terminal told what waited, naming the flow.
    assert any("TO_amal" in line and " 3 " in line for line in told), told
    assert len(sent) == 3
