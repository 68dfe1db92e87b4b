"""Helpers for end-to-end tests: HTTP clients on the running network's nodes, and the real
command line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx


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
