"""The launcher keeps a network running: a crashed node comes back on its own, and the demo
command stops everything it started on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psutil

from deploy.network import Network
from tests.e2e.conftest import client
from tests.waiting import eventually


async def test_a_crashed_node_process_is_restarted_and_ready_again(
    running_network: dict[str, Any], network: Network
) -> None:
    managed = network.supervisor["node-amal"]
    crashed_pid, restarts = managed.pid, managed.restarts
    await network.supervisor.kill("node-amal")

    async with client(running_network, "amal", "caseworker") as amal:

        async def back() -> bool:
            try:
                return (await amal.get("/readyz")).status_code == 200 and managed.pid != crashed_pid
            except httpx.HTTPError:
                return False

        await eventually(back, within=60, what="the killed node restarted and ready")
        assert managed.restarts == restarts + 1
        # Its data survived: the directory replica is still there.
        assert (await amal.get("/api/v1/directory/organisations/sanad")).status_code == 200


def _free_block(start: int, width: int, offsets: tuple[int, ...] = (0,)) -> int:
    """A base port such that base+offset..base+offset+width-1 are all free on loopback, for
    every offset (other programs on this machine hold ports too)."""
    for base in range(start, start + 5000, width):
        try:
            for port in (base + o + i for o in offsets for i in range(width)):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports")


async def test_the_demo_starts_writes_its_credentials_and_stops_cleanly_on_ctrl_c() -> None:
    # The leaf and monitoring ports follow the NATS port, 3200 and 4000 above it.
    http, nats = _free_block(21000, 4), _free_block(31000, 4, offsets=(0, 3200, 4000))
    root = Path(tempfile.gettempdir()) / f"relais-demo-{os.getpid()}"  # short: a socket lives there
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.cli",
        "demo",
        "--root",
        str(root),
        "--http-port",
        str(http),
        "--nats-port",
        str(nats),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    credentials = root / "credentials.json"
    try:
        await eventually(
            lambda: _exists(credentials), within=120, what="the demo writes its credentials"
        )
        nodes = json.loads(credentials.read_text())["nodes"]
        assert set(nodes) == {"hub", "sanad", "amal", "jusoor"}
        for node in nodes.values():
            assert {"org", "role", "url", "database_url", "nats_url", "users"} <= node.keys()
            assert all(user["token"] and user["password"] for user in node["users"])
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 9  # PostgreSQL, four nats-servers, four nodes

        demo.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(demo.communicate(), 60)
        assert demo.returncode == 0, output.decode()
        assert b"ready in" in output and b"Stopped" in output
        survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert survivors == []
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
        shutil.rmtree(root, ignore_errors=True)


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)
