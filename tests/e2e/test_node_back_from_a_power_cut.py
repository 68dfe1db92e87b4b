"""A member's node back from a power cut is not taken for a copy of its credentials (issue 16).

amal's machine loses power: its nats-server is killed with SIGKILL, and the hub, which hears
nothing of it (tests/e2e/silent_line.py), still holds the dead link. The launcher restarts the
nats-server at once (its supervisor), which dials the hub with amal's nkey and is refused as a
second link until the hub finds the old one stale. The hub's directory does not raise the
alarm: no audit record, no incident for the coordinators, nothing told to amal's admin
(services/directory/second_links.py). A true second nats-server started with amal's
credentials, while amal's node is linked, still raises it.

The hub's pings (deploy/nats/hub.conf.tmpl) drop the dead link within 40 s; the directory waits
45 s before it calls a refusal a copy: this test takes a few minutes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from deploy import nats_server
from deploy.demo import bring_up, credentials
from deploy.network import Network, on_free_ports
from deploy.ports import free_ports
from services.directory import second_links
from shared.settings import DEMO_SECRET
from tests.chaos.network import relayed
from tests.e2e.conftest import client
from tests.e2e.silent_line import SilentLine
from tests.e2e.test_flood import told_of_the_second_link
from tests.waiting import eventually

Creds = dict[str, Any]


@pytest.fixture(scope="module")
async def amal_on_a_line() -> AsyncIterator[tuple[Network, Creds]]:
    """A network of the launcher's whose member amal reaches the hub through a silent line."""
    root = Path(tempfile.mkdtemp(prefix="relais-powercut-"))
    net = on_free_ports(root, ("amal", "sanad"), hub_org="secretariat", secret_key=DEMO_SECRET)
    assert net.hub.leaf_port is not None
    line = SilentLine(free_ports(1)[0], net.hub.leaf_port)
    relayed(net, {"amal": line.port})
    await line.start()
    try:
        await net.start_servers()
        users = await bring_up(net, {})
        yield net, credentials(net, users)
    finally:
        await net.stop()
        await line.stop()
        if os.environ.get("RELAIS_TEST_KEEP"):
            print(f"\nkept the test network's files (logs/) in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


async def amal_link(network: Network) -> int | None:
    """The id of the leaf link the hub holds for amal (its own /leafz), if any."""
    url = f"http://127.0.0.1:{network.hub.monitor_port}/leafz"
    async with httpx.AsyncClient(timeout=2) as http:
        leafs = (await http.get(url)).json().get("leafs") or []
    return next((int(leaf["id"]) for leaf in leafs if leaf["account"] == "ORG_amal"), None)


async def no_alarm(network: Network, creds: Creds) -> None:
    hub = network.hub.node_id
    async with client(creds, hub, "admin") as admin:
        found = await admin.get("/api/v1/audit/records", params={"action": "link.second_refused"})
        assert found.status_code == 200, found.text
        assert found.json()["items"] == []
    async with client(creds, hub, "coordinator") as coordinator:
        found = await coordinator.get("/api/v1/directory/second-links")
        assert found.status_code == 200, found.text
        assert found.json() == []
        page = await coordinator.get("/network", headers={"Accept-Language": "en"})
        assert "A second network link made with the credentials of" not in page.text
    async with client(creds, "amal", "admin") as amal_admin:
        items = (await amal_admin.get("/api/v1/notifications/feed")).json()["items"]
        assert not any(i["kind"] == "second_link_refused" for i in items)


async def test_a_node_back_from_a_power_cut_is_refused_for_a_while_but_raises_no_alarm(
    amal_on_a_line: tuple[Network, Creds],
) -> None:
    network, creds = amal_on_a_line
    before = await amal_link(network)
    assert before is not None
    system = await nats.connect(network.hub_material.system_url("127.0.0.1", network.hub.nats_port))
    refused: list[float] = []

    async def heard(msg: Any) -> None:
        if json.loads(msg.data).get("reason") == second_links.REFUSED:
            refused.append(time.monotonic())

    try:
        window = await second_links.stale_window(system)
        await system.subscribe("$SYS.ACCOUNT.ORG_amal.DISCONNECT", cb=heard)
        killed = time.monotonic()
        await network.supervisor.kill("nats-amal")  # restarted by the launcher in 0.5 s

        async def relinked() -> bool:
            return (await amal_link(network)) not in (None, before)

        await eventually(relinked, within=90, what="amal's node links again")
        # What makes this a test: the node back up was refused as a second link, at least
        # once, while the hub held its dead link.
        assert refused, "amal's restarted node was never refused: the hub heard the line end"
        print(
            f"\namal's node refused {len(refused)} times, linked again "
            f"{time.monotonic() - killed:.1f} s after the power cut"
        )
        # As long as the directory could take the refusals for a copy, and a little more.
        await asyncio.sleep(max(0.0, refused[-1] + window.total_seconds() + 5 - time.monotonic()))
    finally:
        await system.close()
    await no_alarm(network, creds)


async def test_a_second_nats_server_with_the_node_s_credentials_still_raises_it(
    amal_on_a_line: tuple[Network, Creds],
) -> None:
    network, creds = amal_on_a_line
    amal = network.plan("amal")
    genuine = await amal_link(network)
    assert genuine is not None
    client_port, monitor_port = free_ports(2)
    own = network.nats_spec(amal)
    copy = replace(
        own,
        name="amal-copy",
        client_port=client_port,
        monitor_port=monitor_port,
        store_dir=network.root / "nats" / "amal-copy",
        hub_leaf_urls=tuple(network.hub_material.leaf_urls),  # straight in: another machine
    )
    process = nats_server.process(
        copy, config_dir=network.root / "nats", log_dir=network.root / "logs"
    )
    await network.supervisor.start(process)
    try:
        await told_of_the_second_link(network, creds)
        assert await amal_link(network) == genuine  # the copy never got in
    finally:
        await network.supervisor.stop(process.name)
