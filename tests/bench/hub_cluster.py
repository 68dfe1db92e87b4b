"""A hub of three nats-servers with R3 streams: throughput with all three up and with one
down, and what a server killed under load costs. Also the setup the cluster test uses.

Two member leaves (sanad, amal), each linked over TLS to all three hub servers and logged in
with its nkey into its own account (``deploy.hub_cluster``: the production hub, scaled out); the
hub's streams and source consumers declared as the hub's directory declares them
(``services.directory.hub_server.declare_hub_streams``, with three replicas as
``RELAIS_STREAM_REPLICAS=3`` makes them) and the members' side as their nodes do; sanad
publishes ``publish_async`` into its ``OUTBOX``; the clock stops when amal's ``INBOX`` holds
every event. Each run has its own subject, which no consumer reads, and each event its own
``Nats-Msg-Id``: the count that arrives is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from deploy.hub_cluster import HubCluster
from services.directory.hub_server import declare_hub_streams
from shared.bus import Bus, login
from shared.federation import INBOX, Member, node_streams, outbox_consumer

Say = Callable[[str], None]
HUB_ORG = "secretariat"  # the hub's own organisation (its node's streams are in HUB)
MEMBERS = ("sanad", "amal")
REPLICAS = 3
POLL = 0.05


@dataclass
class ClusterFederation:
    cluster: HubCluster
    hub: Client  # connected to all three servers
    leaves: dict[str, Client]

    def js(self, org: str) -> JetStreamContext:
        return self.leaves[org].jetstream(timeout=30)

    @property
    def hub_js(self) -> JetStreamContext:
        return self.hub.jetstream(timeout=10)


@asynccontextmanager
async def cluster_federation(say: Say) -> AsyncIterator[ClusterFederation]:
    """Start the cluster and the leaves, declare the streams, and check an event crosses."""
    root = Path(tempfile.mkdtemp(prefix="relais-cluster-"))
    cluster = HubCluster(root, MEMBERS)
    connections: list[Client] = []
    try:
        started = time.monotonic()
        await cluster.start()
        await _leaf_links(cluster)
        say(
            f"hub cluster: 3 servers and {len(MEMBERS)} leaves in {time.monotonic() - started:.1f}s"
        )
        hub = await nats.connect(**login(cluster.hub_urls), max_reconnect_attempts=-1)
        connections.append(hub)
        leaves = {}
        for leaf in cluster.leaves:
            leaves[leaf.name] = await nats.connect(leaf.client_url, max_reconnect_attempts=-1)
            connections.append(leaves[leaf.name])
        fed = ClusterFederation(cluster, hub, leaves)
        await _declare(fed)
        await deliver(fed, 1, within=60)  # every source link is live
        yield fed
    finally:
        for nc in connections:
            with contextlib.suppress(Exception):
                await nc.close()
        await cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _leaf_links(cluster: HubCluster, within: float = 30.0) -> None:
    async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(within):
        while True:  # polling the servers: nothing on this side to wait on
            linked = 0
            for server in cluster.servers:
                spec = server.spec
                leafz = (await client.get(f"http://{spec.host}:{spec.monitor_port}/leafz")).json()
                linked += int(leafz.get("leafnodes", 0))
            if linked >= len(cluster.leaves):
                return
            await asyncio.sleep(0.05)


async def _declare(fed: ClusterFederation) -> None:
    """As production declares them, in the order the sources need: each member's node streams
    and the consumer of its ``OUTBOX`` that the hub's ``FROM_<org>`` names; the hub's own node
    streams and, in each member's account, its ``FROM_``/``TO_``, with ``ROUTER`` and their
    consumers (``declare_hub_streams``, R3); then each ``INBOX``, which sources ``TO_<org>``."""
    domain = fed.cluster.domain
    inboxes: list[tuple[str, StreamConfig]] = []
    for org in MEMBERS:
        for config in node_streams(org, hub_domain=domain, is_hub=False):
            if config.name == INBOX:
                inboxes.append((org, config))
            else:
                await fed.js(org).add_stream(config)
        consumer = outbox_consumer(org)
        await fed.js(org).add_consumer(consumer.stream, consumer.config)
    hub = Bus(nc=fed.hub, js=fed.hub_js, org=HUB_ORG)
    # The secretariat's own node streams, as its node declares them (one replica: the
    # node's, not the hub's topology).
    hub_inbox = []
    for config in node_streams(HUB_ORG, hub_domain=domain, is_hub=True):
        if config.name == INBOX:
            hub_inbox.append(config)
        else:
            await hub.ensure_stream(config)
    members = [Member(org, org) for org in MEMBERS]
    await declare_hub_streams(
        hub, Member(HUB_ORG, domain), members, hub_domain=domain, replicas=REPLICAS
    )
    for config in hub_inbox:
        await hub.ensure_stream(config)
    for org, config in inboxes:
        await fed.js(org).add_stream(config)


async def publish(fed: ClusterFederation, subject: str, count: int, first: int = 0) -> None:
    """sanad publishes ``count`` events, each with its own id (numbered from ``first``),
    acknowledged by its OUTBOX."""
    js = fed.js("sanad")
    for index in range(first, first + count):
        await js.publish_async(subject, b"{}", headers={"Nats-Msg-Id": f"{subject}-{index}"})
    await js.publish_async_completed()


async def arrived(fed: ClusterFederation, subject: str) -> int:
    info = await fed.js("amal").stream_info(INBOX, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def _arrived_so_far(fed: ClusterFederation, subject: str) -> int:
    try:
        return await arrived(fed, subject)
    except (TimeoutError, nats.errors.Error):  # amal's server busy: ask again
        return 0


async def deliver(
    fed: ClusterFederation,
    count: int,
    *,
    within: float,
    during: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Send ``count`` events sanad → amal and wait until all are in amal's ``INBOX``.

    ``during(published)`` is awaited once, when half of them are published (a fault under load).
    """
    subject = f"relais.net.sanad.amal.cluster.{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    half = count // 2
    await publish(fed, subject, half)
    if during is not None:
        await during(half)
    await publish(fed, subject, count - half, first=half)
    published = time.monotonic() - started
    async with asyncio.timeout(within):
        # Polling the server: nothing on this side to wait on.
        while await _arrived_so_far(fed, subject) < count:  # noqa: ASYNC110
            await asyncio.sleep(POLL)
    wall = time.monotonic() - started
    await asyncio.sleep(0.5)  # anything copied twice would show now
    got = await arrived(fed, subject)
    return {
        "events": count,
        "arrived": got,
        "publish_s": round(published, 2),
        "wall_s": round(wall, 2),
        "events_per_s": round(count / wall),
    }


async def leader(fed: ClusterFederation, stream: str) -> str:
    info = await fed.hub_js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader is not None
    return info.cluster.leader


async def kill_server(fed: ClusterFederation, name: str) -> None:
    """SIGKILL one hub server, as a power cut would, and keep it down."""
    await fed.cluster.supervisor.kill(f"nats-{name}")
    await fed.cluster.supervisor.stop(f"nats-{name}")


async def run(say: Say, events: int, limit: float) -> dict[str, Any]:
    """All three up, one killed under load, then one down; a failure is a row, not a crash."""
    result: dict[str, Any] = {"benchmark": "hub-cluster", "servers": 3, "replicas": REPLICAS}
    try:
        async with cluster_federation(say) as fed:
            say(f"hub cluster: {events} events, all three servers up")
            result["all_up"] = await deliver(fed, events, within=limit)
            victim = await leader(fed, "ROUTER")

            async def kill(_: int) -> None:
                say(f"hub cluster: killing {victim} (ROUTER's leader) under load")
                await kill_server(fed, victim)

            result["killed_under_load"] = {
                "server": victim,
                **await deliver(fed, events, within=limit, during=kill),
            }
            say(f"hub cluster: {events} events, {victim} down")
            result["one_down"] = await deliver(fed, events, within=limit)
        short = [
            k for k in ("all_up", "killed_under_load", "one_down") if result[k]["arrived"] != events
        ]
        if short:
            result["error"] = f"not every event arrived exactly once in: {', '.join(short)}"
    except Exception as exc:  # a row of the table, and the rest still runs
        result["error"] = f"{type(exc).__name__}: {exc!r}"
        say(f"hub cluster: {result['error']}\n{traceback.format_exc()}")
    return result


def table(result: dict[str, Any]) -> str:
    head = "hub cluster (3 servers, R3)".ljust(34) + "".join(
        c.rjust(11) for c in ("events", "arrived", "wall s", "events/s")
    )
    if "error" in result:
        return f"{head}\nFAILED: {result['error']}"
    lines = [head]
    for key, name in (
        ("all_up", "all three up"),
        ("killed_under_load", "one killed under load"),
        ("one_down", "one down"),
    ):
        row = result.get(key)
        if row:
            cells = (row["events"], row["arrived"], row["wall_s"], row["events_per_s"])
            lines.append(name.ljust(34) + "".join(f"{c:>11}" for c in cells))
    return "\n".join(lines)
