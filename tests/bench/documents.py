"""A referral's document end to end, on the referrals bench's network: a 10 MB file posted
at sanad (checked, sealed in 40 chunks, written with its outbox rows in one transaction), through
the hub, to amal's node, which keeps each chunk, verifies the whole file (every chunk, the final
tag, the digest and its signature) and tells its staff (``relais.local.referrals.changed`` with
``attached``, seen on amal's NATS). Measured: the time from the POST to that event, the
network's CPU over it (``tests.bench.cpu``), and the file's bytes per second."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.bench import cpu

SIZE = 10 * 1024 * 1024 - 4096  # just under the default limit
IDLE_S = 5.0


async def run(
    sanad: httpx.AsyncClient, nc: Client, meter: cpu.Meter, referral_id: str, limit: float
) -> dict[str, Any]:
    arrived = asyncio.Event()

    async def on_change(msg: Msg) -> None:
        event = json.loads(msg.data)
        if event["data"]["change"] == "attached" and event["subject"] == referral_id:
            arrived.set()

    subscription = await nc.subscribe("relais.local.referrals.changed", cb=on_change)
    content = b"%PDF-1.7\n" + os.urandom(SIZE - 9)
    try:
        meter.start()
        await asyncio.sleep(IDLE_S)
        idle = meter.stop()
        meter.start()
        started = time.monotonic()
        response = await sanad.post(
            f"/api/v1/referrals/{referral_id}/attachments",
            content=content,
            headers={"Content-Disposition": "attachment; filename=bench.pdf"},
            timeout=limit,
        )
        posted_s = time.monotonic() - started
        if response.status_code != 201:
            raise RuntimeError(f"sanad answered {response.status_code}: {response.text[:200]}")
        await asyncio.wait_for(arrived.wait(), limit)
        wall = time.monotonic() - started
        spent = meter.stop()
    finally:
        await subscription.unsubscribe()
    figures = cpu.per_event(spent, 1, wall_s=wall, idle=idle, idle_s=IDLE_S)
    return {
        "bytes": len(content),
        "upload_s": round(posted_s, 3),
        "verified_arrival_s": round(wall, 3),
        "mb_per_s": round(len(content) / wall / 1e6, 2),
        "cpu": figures,
    }


def table(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"  a 10 MB document: {result['error']}"]
    return [
        f"  a 10 MB document  {result['bytes']} bytes: upload answered in {result['upload_s']} s,"
        f" verified at amal after {result['verified_arrival_s']} s ({result['mb_per_s']} MB/s)",
        *cpu.table(result["cpu"], unit="document"),
    ]
