"""Helpers for end-to-end tests: HTTP clients on the running network's nodes, the real
command line, and networks of their own for tests that leave a network changed."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from deploy.demo import bring_up, credentials
from deploy.network import Network, on_free_ports
from shared.settings import DEMO_SECRET


def user(creds: dict[str, Any], node: str, role: str) -> dict[str, str]:
    return next(u for u in creds["nodes"][node]["users"] if u["role"] == role)


def client(creds: dict[str, Any], node: str, role: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {user(creds, node, role)['token']}"} if role else {}
    return httpx.AsyncClient(base_url=creds["nodes"][node]["url"], headers=headers, timeout=10)


async def relais(*args: str | Path) -> tuple[int, str]:
    """Run the real command line, in English; its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.cli",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "RELAIS_LANG": "en"},
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


@asynccontextmanager
async def network_of_its_own(
    members: Sequence[str], prefix: str
) -> AsyncIterator[tuple[Network, dict[str, Any]]]:
    """A demo network (the launcher's, as ``relais demo``) on free ports, started and seeded,
    with its demo-style credentials; stopped and removed afterwards (kept with
    ``RELAIS_TEST_KEEP``, to read its servers' logs after a failure)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    net = on_free_ports(root, members, hub_org="secretariat", secret_key=DEMO_SECRET)
    try:
        await net.start_servers()
        users = await bring_up(net, {})
        yield net, credentials(net, users)
    finally:
        await net.stop()
        if os.environ.get("RELAIS_TEST_KEEP"):
            print(f"\nkept the test network's files (logs/) in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
