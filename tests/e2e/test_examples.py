"""The two reference clients of examples/ run as a member system's developer would run them,
against the real network with their demo credentials: each does the whole loop between two
member nodes over NATS (create → received → accepted → in_progress → completed, a list paged)
and reads both systems' feeds."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.contract_tools import NODE, ROOT

Creds = dict[str, Any]


async def run_example(argv: list[str], creds: Creds, tmp_path: Path) -> str:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(creds))
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        str(path),
        "sanad",
        "amal",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    text = out.decode()
    print(f"{argv[-1]} ran in {time.monotonic() - started:.1f} s:\n{text}")
    assert process.returncode == 0, text
    return text


def assert_whole_loop(text: str) -> None:
    assert "amal: complete -> completed" in text, text
    assert "is completed" in text, text
    for change in ("sent", "received", "accepted", "in_progress", "completed"):
        assert f": {change} (status" in text, (change, text)
    assert "[amal feed]" in text and "[sanad feed]" in text, text
    assert "pages of 2" in text, text


async def test_the_python_client_does_the_whole_loop(
    running_network: Creds, tmp_path: Path
) -> None:
    argv = [sys.executable, str(ROOT / "examples" / "python_client.py")]
    assert_whole_loop(await run_example(argv, running_network, tmp_path))


@pytest.mark.skipif(NODE is None, reason="node missing: install node and npm, then run npm ci")
async def test_the_javascript_client_does_the_whole_loop(
    running_network: Creds, tmp_path: Path
) -> None:
    assert (ROOT / "node_modules" / "nats").is_dir(), "the nats package is missing: npm ci"
    assert NODE is not None
    argv = [NODE, str(ROOT / "examples" / "js_client.mjs")]
    assert_whole_loop(await run_example(argv, running_network, tmp_path))
