"""Store-and-forward: how fast a backlog drains after an outage, and how soon a returned link
delivers its first event. On the federation's servers (no node processes, so the figures are
the broker's own: ``sync_interval: always``, every stream on disk).

- node outage: amal's nats-server is stopped; sanad publishes ``events`` events to amal
  (``publish_async`` into its ``OUTBOX``); they cross the hub (``FROM_sanad``, ``ROUTER``) and
  wait in ``TO_amal``. Then amal's nats-server starts: the clock runs from the moment it is
  ready until its ``INBOX`` holds the first, then the last, of them.
``events_per_s`` counts from the first arrival to the last (the rate once the link carries);
``drain_s`` from the server's return to the last arrival.
- hub outage: the hub's nats-server is stopped; sanad publishes ``hub_events`` events into its
  ``OUTBOX``, where they wait. Then the hub starts: the clock runs until the hub's
  ``FROM_sanad`` holds the first, and amal's ``INBOX`` the last.
Each event has its own ``Nats-Msg-Id`` and its run's own subject, which no consumer reads, so
the counts are exact: the last check is that exactly ``events`` arrived, none twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import nats
from nats.js import JetStreamContext

from shared.federation import INBOX, OUTBOX, account_api
from tests.bench.topology import Federation

Say = Callable[[str], None]
POLL = 0.02


async def run(
    fed: Federation, events: int, hub_events: int, limit: float, say: Say
) -> dict[str, Any]:
    """Both outages, one after the other; a failure is a row of the table, not a crash."""
    result: dict[str, Any] = {"benchmark": "store-and-forward", "sync_interval": "always"}
    for key, outage, count in (
        ("node_outage", _node_outage, events),
        ("hub_outage", _hub_outage, hub_events),
    ):
        say(f"store-and-forward: {key.replace('_', ' ')}, {count} events")
        try:
            async with asyncio.timeout(limit):
                result[key] = await outage(fed, count, say)
        except Exception as exc:  # a row of the table, and the rest still runs
            result[key] = {"events": count, "error": f"{type(exc).__name__}: {exc}"}
            say(f"store-and-forward: {key}: {result[key]['error']}")
    return result


async def _node_outage(fed: Federation, count: int, say: Say) -> dict[str, Any]:
    subject = f"relais.net.sanad.amal.backlog.{uuid.uuid4().hex[:8]}"
    net, amal = fed.net, fed.plan("amal")
    await net.supervisor.stop(f"nats-{amal.node_id}")
    try:
        published = await _publish(fed.plan("sanad").nats_url, subject, count)
        waited = time.monotonic()
        await _until(net.hub.nats_url, "TO_amal", subject, count, api=account_api("amal"))
        at_hub = time.monotonic() - waited
        say(f"store-and-forward: {count} events wait at the hub (TO_amal); amal returns")
    finally:
        await net.supervisor.start(net.nats_process(amal))
    returned = time.monotonic()
    first = await _until(amal.nats_url, INBOX, subject, 1)
    last = await _until(amal.nats_url, INBOX, subject, count)
    arrived = await _count(amal.nats_url, INBOX, subject)
    return _figures(count, published, at_hub, first - returned, last - returned, arrived)


async def _hub_outage(fed: Federation, count: int, say: Say) -> dict[str, Any]:
    subject = f"relais.net.sanad.amal.backlog.{uuid.uuid4().hex[:8]}"
    net, hub = fed.net, fed.net.hub
    amal = fed.plan("amal")
    await net.supervisor.stop(f"nats-{hub.node_id}")
    try:
        published = await _publish(fed.plan("sanad").nats_url, subject, count)
        say(f"store-and-forward: {count} events wait in sanad's OUTBOX; the hub returns")
    finally:
        await net.supervisor.start(net.nats_process(hub))
    returned = time.monotonic()
    sanad = fed.plan("sanad").org
    first = await _until(hub.nats_url, f"FROM_{sanad}", subject, 1, api=account_api(sanad))
    last = await _until(amal.nats_url, INBOX, subject, count)
    arrived = await _count(amal.nats_url, INBOX, subject)
    return _figures(count, published, None, first - returned, last - returned, arrived)


def _figures(
    count: int,
    published: float,
    at_hub: float | None,
    first: float,
    last: float,
    arrived: int,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "events": count,
        "publish_s": round(published, 2),
        "link_return_to_first_s": round(first, 2),
        "drain_s": round(last, 2),
        # From the first arrival to the last: the rate once the link carries again.
        "events_per_s": round(count / max(last - first, 1e-3)),
        "arrived": arrived,
    }
    if at_hub is not None:
        figures["reach_hub_s"] = round(at_hub, 2)
    if arrived != count:
        figures["error"] = f"{arrived} arrived for {count} sent"
    return figures


async def _publish(url: str, subject: str, count: int) -> float:
    """Publish ``count`` events with their own ids into the node's ``OUTBOX``; seconds taken."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30)
        started = time.monotonic()
        for index in range(count):
            await js.publish_async(subject, b"{}", headers={"Nats-Msg-Id": f"{subject}-{index}"})
        await js.publish_async_completed()
        held = await _held(js, OUTBOX, subject)
        if held != count:
            raise RuntimeError(f"sanad's OUTBOX holds {held} of {count}")
        return time.monotonic() - started
    finally:
        await nc.close()


async def _until(
    url: str, stream: str, subject: str, count: int, *, api: str | None = None
) -> float:
    """Poll until ``stream`` holds ``count`` messages on ``subject``; when (monotonic).
    ``api``: on the hub, a member's stream is in its own account's JetStream API."""
    while True:  # polling the server: nothing on this side to wait on
        try:
            if await _count(url, stream, subject, api=api) >= count:
                return time.monotonic()
        except Exception:  # the server is still starting, or the stream not yet recovered
            pass
        await asyncio.sleep(POLL)


async def _count(url: str, stream: str, subject: str, *, api: str | None = None) -> int:
    nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=2) if api is None else nc.jetstream(prefix=api, timeout=2)
        return await _held(js, stream, subject)
    finally:
        await nc.close()


async def _held(js: JetStreamContext, stream: str, subject: str) -> int:
    info = await js.stream_info(stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


COLUMNS = ("events", "publish s", "at hub s", "first s", "drain s", "events/s")


def table(result: dict[str, Any]) -> str:
    """One line per outage; the clock starts when the stopped server is ready again."""
    rows = {
        "node outage (TO_amal → amal's INBOX)": result.get("node_outage", {}),
        "hub outage (sanad's OUTBOX → amal's INBOX)": result.get("hub_outage", {}),
    }
    width = max(len(name) for name in rows)
    lines = [
        "store-and-forward".ljust(width) + "".join(c.rjust(11) for c in COLUMNS),
    ]
    for name, row in rows.items():
        if "error" in row or not row:
            lines.append(
                f"{name.ljust(width)}{row.get('events', 0):>11}  FAILED: {row.get('error')}"
            )
            continue
        cells = (
            row["events"],
            row["publish_s"],
            row.get("reach_hub_s", "-"),
            row["link_return_to_first_s"],
            row["drain_s"],
            row["events_per_s"],
        )
        lines.append(name.ljust(width) + "".join(f"{c:>11}" for c in cells))
    return "\n".join(lines)
