"""How results are shown: a table for people, a JSON file in ``bench-results/`` for comparing."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import platform
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from deploy import nats_server
from tests.bench import match
from tests.bench.measure import Figures
from tests.bench.replica import CatchUp

RESULTS = Path(__file__).resolve().parents[2] / "bench-results"
COLUMNS = ("events", "events/s", "p50 ms", "p99 ms", "max ms", "wall s")
REPLICA_COLUMNS = ("events", "orgs", "publish s", "backlog s", "catch-up s", "events/s", "services")


def table(results: list[Figures]) -> str:
    """One line per scenario; a failed one shows how many events arrived, and why."""
    names = [f"{r.scenario} {r.path}" for r in results]
    width = max(len("scenario"), *(len(n) for n in names))
    lines = ["scenario".ljust(width) + "".join(c.rjust(10) for c in COLUMNS)]
    for name, r in zip(names, results, strict=True):
        if r.error is not None:
            lines.append(f"{name.ljust(width)}{r.events:>10}  FAILED: {r.error}")
            continue
        cells = (r.events, r.events_per_s, r.p50_ms, r.p99_ms, r.max_ms, r.wall_s)
        lines.append(name.ljust(width) + "".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def match_table(result: dict[str, Any]) -> str:
    """The query timings, under what they were timed on; or why there are none."""
    if "error" in result:
        return f"directory match  FAILED: {result['error']}"
    heading = (
        f"directory match over {result['organisations']} organisations,"
        f" {result['services']} services (loaded in {result['load_s']}s)"
    )
    return heading + "\n" + match.table(result["results"])


def replica_table(result: CatchUp) -> str:
    """One line: the backlog a member's directory applied after an outage, and how fast."""
    name = "replica catch-up (hub broadcasts → amal's directory)"
    head = "scenario".ljust(len(name)) + "".join(c.rjust(12) for c in REPLICA_COLUMNS)
    if result.error is not None:
        return f"{head}\n{name}{result.events:>12}  FAILED: {result.error}"
    cells = (
        result.events,
        result.organisations,
        result.publish_s,
        result.backlog_s,
        result.catch_up_s,
        result.events_per_s,
        result.service_rows,
    )
    return f"{head}\n{name}" + "".join(f"{c:>12}" for c in cells)


async def machine(postgres_url: str, root: Path) -> dict[str, Any]:
    """What the figures depend on: the machine, its disk, and every moving part's version."""
    process = await asyncio.create_subprocess_exec(
        nats_server.binary(), "--version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    conn = await asyncpg.connect(postgres_url)
    try:
        postgres = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine
        "platform": platform.platform(),
        "python": platform.python_version(),
        "nats_server": out.decode().strip(),
        "postgresql": postgres,
        "nats_py": importlib.metadata.version("nats-py"),
        "asyncpg": importlib.metadata.version("asyncpg"),
        "fsync_per_s": await asyncio.to_thread(fsync_rate, root),
    }


def fsync_rate(folder: Path, seconds: float = 1.0) -> float:
    """Small appends with fsync per second in ``folder``: with ``sync_interval: always`` every
    stream write pays one, so the disk bounds the federation's rate."""
    probe = folder / "fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    count, started = 0, time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            os.write(fd, b"x" * 300)
            os.fsync(fd)
            count += 1
    finally:
        os.close(fd)
        probe.unlink()
    return round(count / (time.monotonic() - started))


def write_json(started: datetime, document: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{started:%Y%m%dT%H%M%SZ}-bench.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return path


def as_json(results: list[Figures]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
