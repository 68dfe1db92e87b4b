"""One hub, N member organisations: how the hub's cost per event grows with N.

For each N of ``--scale-orgs``, on a fresh temporary root: the production hub (one
nats-server, its material from ``init_hub``, a TLS leaf port, the accounts file from
``render_accounts`` with one ``ORG_<org>`` account per member and a real nkey per member's
key folder), started through the launcher (``deploy.nats_server``, ``Supervisor``); two real
member leaves (sanad, amal) that check the hub against the network CA and log in with their
nkey seed; and the hub's topology declared for all N members as the hub's directory declares it
(``declare_hub_streams``): 2N + 1 hub streams, ``ROUTER`` offering each message to the
``to_<org>`` consumers of the N ``TO_<org>`` streams (2N filter subjects).

The N - 2 members without a leaf are declared like the others: their ``FROM_<org>`` names a
consumer on an ``OUTBOX`` in a JetStream domain nobody serves. nats-server creates the stream
anyway and retries the source in the background (as for a member whose node is down), so the
declaration does not wait on them; what the retries cost shows in the hub's idle CPU and its
log (``hub_log_warnings``); the measurement starts ``SETTLE_S`` after the declaration, once
that has calmed down.

Measured per N: the time to declare the hub's topology, the streams and consumers on the hub
(``/jsz``), the hub's idle CPU, then ``--scale-events`` events published by sanad
(``publish_async`` into its ``OUTBOX``, each with its own ``Nats-Msg-Id``, on a subject of its
own) until amal's ``INBOX`` holds them all: events/s, the hub process's CPU seconds during the
run (user + system, psutil; also net of its idle rate over as long: ``net s/1k``) and its RSS
after it, and each event's latency from its store time in sanad's ``OUTBOX`` to its store time
in amal's ``INBOX`` (a burst: mostly queueing). Every event must arrive exactly once, else the
row has an error; ``sources_waiting`` counts the ``FROM_`` sources that never linked (N - 2).

Alone: ``python -m tests.bench.hub_scale [--scale-orgs 2,25,100] [--scale-events 3000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import psutil
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from deploy import nats_server
from deploy.joining import Hub, init_hub
from deploy.nats_config import NatsServerSpec
from deploy.ports import free_ports
from deploy.processes import Supervisor
from services.directory.hub_server import declare_hub_streams
from shared.bus import Bus
from shared.federation import (
    INBOX,
    OUTBOX,
    Member,
    account_api,
    node_streams,
    outbox_consumer,
)
from shared.membership.accounts import OrgAccount, render_accounts
from shared.membership.joining import load_or_create_nkey, nkey_public
from tests.bench.measure import percentile

Say = Callable[[str], None]
HUB_ORG = "secretariat"  # the hub's own organisation (not counted in N)
DOMAIN = "hub"
LEAVES = ("sanad", "amal")  # the two members with a leaf; the others are declared only
DEFAULT_ORGS = (2, 25, 100)
IDLE_S = 3.0  # the hub's CPU with nothing flowing, over this long
# After the declaration the hub burns CPU for a few seconds (N = 100: 8 % of a core in the
# first 5 s, 2-3 % from 10 s on, as the waiting sources' retries back off): let it settle.
SETTLE_S = 8.0
POLL = 0.05
ROUTINE = "Plaintext passwords detected"  # the HUB and SYS users' passwords (init_hub)
COLUMNS = (
    "streams",
    "consumers",
    "declare s",
    "events",
    "events/s",
    "p50 ms",
    "p99 ms",
    "CPU s/1k",
    "idle CPU%",
    "net s/1k",
    "RSS MB",
)


def organisations(count: int) -> list[str]:
    """``count`` members: sanad and amal, then ``org003``... (no leaf)."""
    if count < len(LEAVES):
        raise ValueError(f"at least {len(LEAVES)} members (sanad and amal)")
    return [*LEAVES, *(f"org{i:03d}" for i in range(len(LEAVES) + 1, count + 1))]


@dataclass
class ScaleHub:
    """One hub nats-server with ``orgs`` as member accounts, and sanad's and amal's leaves."""

    root: Path
    orgs: list[str]
    supervisor: Supervisor = field(default_factory=Supervisor)
    material: Hub = field(init=False)
    spec: NatsServerSpec = field(init=False)
    leaves: list[NatsServerSpec] = field(init=False)
    hub: Client | None = None
    clients: dict[str, Client] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        ports = iter(free_ports(3 + 2 * len(LEAVES)))
        client, monitor, leaf = next(ports), next(ports), next(ports)
        self.material = init_hub(self.root / "hub", f"127.0.0.1:{leaf}", domain=DOMAIN)
        self.material.accounts_file.write_text(
            render_accounts(
                [OrgAccount(org, nkey_public(self._nkey(org))) for org in self.orgs],
                hub_domain=DOMAIN,
            )
        )
        self.spec = NatsServerSpec(
            name="hub",
            domain=DOMAIN,
            client_port=client,
            monitor_port=monitor,
            store_dir=self.root / "nats" / "hub",
            leaf_port=leaf,
            tls_cert=self.material.tls_cert,
            tls_key=self.material.tls_key,
            accounts_file=self.material.accounts_file,
        )
        self.leaves = [
            NatsServerSpec(
                name=org,
                domain=org,
                client_port=next(ports),
                monitor_port=next(ports),
                store_dir=self.root / "nats" / org,
                hub_leaf_urls=tuple(self.material.leaf_urls),
                ca_file=self.material.ca_file,
                nkey_seed=bytes(self._nkey(org).seed).decode(),
            )
            for org in LEAVES
        ]

    def _nkey(self, org: str) -> Any:
        return load_or_create_nkey(self.root / "keys" / org)

    @property
    def monitor(self) -> str:
        return f"http://{self.spec.host}:{self.spec.monitor_port}"

    @property
    def process(self) -> psutil.Process:
        pid = self.supervisor["nats-hub"].pid
        assert pid is not None
        return psutil.Process(pid)

    def js(self, org: str) -> JetStreamContext:
        return self.clients[org].jetstream(timeout=30)

    async def start(self) -> None:
        config, logs = self.root / "nats", self.root / "logs"
        await self.supervisor.start(nats_server.process(self.spec, config_dir=config, log_dir=logs))
        await self.supervisor.start_all(
            [nats_server.process(leaf, config_dir=config, log_dir=logs) for leaf in self.leaves]
        )
        await self._leaf_links()
        self.hub = await nats.connect(
            self.material.client_url(self.spec.host, self.spec.client_port),
            max_reconnect_attempts=-1,
        )
        for leaf in self.leaves:
            self.clients[leaf.name] = await nats.connect(leaf.client_url, max_reconnect_attempts=-1)

    async def _leaf_links(self, within: float = 30.0) -> None:
        """Until both leaves are linked: a source across a link not up yet waits out nats-server's
        back-off."""
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(within):
            while True:  # polling the server: nothing on this side to wait on
                leafz = (await client.get(f"{self.monitor}/leafz")).json()
                if int(leafz.get("leafnodes", 0)) >= len(self.leaves):
                    return
                await asyncio.sleep(POLL)

    async def stop(self) -> None:
        for nc in [*self.clients.values(), *([self.hub] if self.hub else [])]:
            with contextlib.suppress(Exception):
                await nc.close()
        await self.supervisor.stop_all()

    def log_warnings(self) -> list[str]:
        """The hub's warnings and errors, without the pid and time, but the routine one."""
        path = self.root / "logs" / "nats-hub.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return [
            line.split("] ", 1)[-1].split(" ", 2)[-1]
            for line in lines
            if ("[WRN]" in line or "[ERR]" in line) and ROUTINE not in line
        ]


@asynccontextmanager
async def scale_hub(orgs: list[str]) -> AsyncIterator[ScaleHub]:
    root = Path(tempfile.mkdtemp(prefix="relais-scale-"))
    hub = ScaleHub(root, orgs)
    try:
        await hub.start()
        yield hub
    finally:
        await hub.stop()
        shutil.rmtree(root, ignore_errors=True)


async def declare(hub: ScaleHub) -> float:
    """As production declares them, in the order the sources need: sanad's and amal's node
    streams and their ``OUTBOX`` consumer; the hub's own node streams; the hub's topology for
    all N members (timed: the returned seconds); then each ``INBOX``."""
    assert hub.hub is not None
    inboxes: list[tuple[str, StreamConfig]] = []
    for org in LEAVES:
        for config in node_streams(org, hub_domain=DOMAIN, is_hub=False):
            if config.name == INBOX:
                inboxes.append((org, config))
            else:
                await hub.js(org).add_stream(config)
        consumer = outbox_consumer(org)
        await hub.js(org).add_consumer(consumer.stream, consumer.config)
    bus = Bus(nc=hub.hub, js=hub.hub.jetstream(timeout=10), org=HUB_ORG)
    hub_inbox = []
    for config in node_streams(HUB_ORG, hub_domain=DOMAIN, is_hub=True):
        if config.name == INBOX:
            hub_inbox.append(config)
        else:
            await bus.ensure_stream(config)
    started = time.monotonic()
    await declare_hub_streams(
        bus, Member(HUB_ORG, DOMAIN), [Member(org, org) for org in hub.orgs], hub_domain=DOMAIN
    )
    declared = time.monotonic() - started
    for config in hub_inbox:
        await bus.ensure_stream(config)
    for org, config in inboxes:
        await hub.js(org).add_stream(config)
    return declared


async def publish(hub: ScaleHub, subject: str, count: int) -> None:
    js = hub.js("sanad")
    for index in range(count):
        payload = json.dumps({"i": index}).encode()
        await js.publish_async(subject, payload, headers={"Nats-Msg-Id": f"{subject}-{index}"})
    await js.publish_async_completed()


async def arrived(hub: ScaleHub, subject: str) -> int:
    info = await hub.js("amal").stream_info(INBOX, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def _arrived_so_far(hub: ScaleHub, subject: str) -> int:
    try:
        return await arrived(hub, subject)
    except (TimeoutError, nats.errors.Error):  # amal's server busy: ask again
        return 0


async def deliver(hub: ScaleHub, count: int, *, within: float) -> dict[str, Any]:
    """sanad → hub → amal, ``count`` events; the clock stops when amal's ``INBOX`` holds all."""
    subject = f"relais.net.sanad.amal.scale.{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    await publish(hub, subject, count)
    published = time.monotonic() - started
    async with asyncio.timeout(within):
        while await _arrived_so_far(hub, subject) < count:  # noqa: ASYNC110
            await asyncio.sleep(POLL)
    wall = time.monotonic() - started
    return {
        "subject": subject,
        "events": count,
        "publish_s": round(published, 2),
        "wall_s": round(wall, 2),
        "events_per_s": round(count / wall),
    }


async def stored_at(
    js: JetStreamContext, stream: str, subject: str, count: int
) -> dict[int, float]:
    """Each event's store time in ``stream`` (by its index), read back with an ordered consumer."""
    times: dict[int, float] = {}
    done = asyncio.Event()

    async def take(msg: Msg) -> None:
        times[int(json.loads(msg.data)["i"])] = msg.metadata.timestamp.timestamp()
        if len(times) >= count:
            done.set()

    subscription = await js.subscribe(subject, stream=stream, ordered_consumer=True, cb=take)
    try:
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        await subscription.unsubscribe()
    return times


async def latencies(hub: ScaleHub, subject: str, count: int) -> dict[str, float]:
    """From sanad's ``OUTBOX`` to amal's ``INBOX``, store time to store time (one clock)."""
    sent = await stored_at(hub.js("sanad"), OUTBOX, subject, count)
    received = await stored_at(hub.js("amal"), INBOX, subject, count)
    ordered = sorted((received[i] - sent[i]) * 1000 for i in received if i in sent)
    if not ordered:
        return {}
    return {
        "p50_ms": round(percentile(ordered, 50), 1),
        "p99_ms": round(percentile(ordered, 99), 1),
        "max_ms": round(ordered[-1], 1),
    }


async def waiting(hub: ScaleHub) -> int:
    """How many ``FROM_<org>`` sources never reached their member's ``OUTBOX`` (those of the
    members without a leaf: N - 2 expected)."""
    assert hub.hub is not None
    count = 0
    for org in hub.orgs:
        js = hub.hub.jetstream(prefix=account_api(org), timeout=5)
        info = await js.stream_info(f"FROM_{org}")
        count += sum(1 for s in info.sources or [] if s.error or s.active is None or s.active < 0)
    return count


async def jsz(hub: ScaleHub) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        answer: dict[str, Any] = (await client.get(f"{hub.monitor}/jsz")).json()
    return answer


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(count: int, events: int, limit: float, say: Say) -> dict[str, Any]:
    """One N: start, declare, idle, deliver; a failure is a row of the table, not a crash."""
    row: dict[str, Any] = {"orgs": count, "events": events}
    row["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    try:
        async with asyncio.timeout(limit):
            started = time.monotonic()
            async with scale_hub(organisations(count)) as hub:
                row["start_s"] = round(time.monotonic() - started, 2)
                row["declare_s"] = round(await declare(hub), 2)
                counts = await jsz(hub)
                row["streams"] = counts.get("streams")
                row["consumers"] = counts.get("consumers")
                say(
                    f"hub scale: N={count}: up in {row['start_s']}s, topology declared in"
                    f" {row['declare_s']}s ({row['streams']} streams, {row['consumers']}"
                    " consumers on the hub)"
                )
                warm = await deliver(hub, 1, within=60)  # every source link is live
                row["warm_up_s"] = warm["wall_s"]
                process = hub.process
                await asyncio.sleep(SETTLE_S)
                before = cpu_s(process)
                await asyncio.sleep(IDLE_S)
                row["idle_cpu_pct"] = round((cpu_s(process) - before) / IDLE_S * 100, 1)
                row["rss_idle_mb"] = round(process.memory_info().rss / 2**20, 1)
                before = cpu_s(process)
                run = await deliver(hub, events, within=limit)
                used = cpu_s(process) - before
                row["rss_mb"] = round(process.memory_info().rss / 2**20, 1)
                await asyncio.sleep(0.5)  # anything copied twice would show now
                row["arrived"] = await arrived(hub, run["subject"])
                row.update({k: v for k, v in run.items() if k not in ("subject", "events")})
                row["hub_cpu_s"] = round(used, 2)
                row["hub_cpu_s_per_1000"] = round(used / events * 1000, 3)
                # Less what the hub burns with nothing flowing (heartbeats, waiting sources).
                idle = row["idle_cpu_pct"] / 100 * run["wall_s"]
                row["hub_cpu_s_per_1000_net_of_idle"] = round((used - idle) / events * 1000, 3)
                row.update(await latencies(hub, run["subject"], events))
                warnings = hub.log_warnings()
                row["hub_log_warnings"] = len(warnings)
                row["sources_waiting"] = await waiting(hub)
                row["hub_log_first_warnings"] = list(dict.fromkeys(warnings))[:3]
            if row["arrived"] != events:
                row["error"] = (
                    f"{row['arrived']} of {events} events arrived (exactly once expected)"
                )
    except TimeoutError:
        row["error"] = f"not done within {limit:.0f}s"
    except Exception as exc:  # a row of the table, and the rest still runs
        row["error"] = f"{type(exc).__name__}: {exc!r}"
        say(f"hub scale: N={count}: {row['error']}\n{traceback.format_exc()}")
    row["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return row


async def run(say: Say, orgs: list[int], events: int, limit: float) -> dict[str, Any]:
    """Each N in turn, on servers of its own."""
    result: dict[str, Any] = {
        "benchmark": "hub-scale",
        "hub": "one nats-server, sync_interval: always, R1",
        "events": events,
        "cpu_count": os.cpu_count(),
        "rows": [],
    }
    for count in orgs:
        say(f"hub scale: one hub, {count} member accounts, {events} events sanad → amal")
        row = await measure(count, events, limit, say)
        if "error" in row:
            say(f"hub scale: N={count}: {row['error']}")
        else:
            say(
                f"hub scale: N={count}: {row['events_per_s']} events/s,"
                f" hub {row['hub_cpu_s_per_1000']} CPU s per 1000 events, RSS {row['rss_mb']} MB"
            )
        result["rows"].append(row)
    failed = [str(r["orgs"]) for r in result["rows"] if "error" in r]
    if failed:
        result["error"] = f"failed for N = {', '.join(failed)}"
    return result


def table(result: dict[str, Any]) -> str:
    name = "hub scale (N members, 1 hub)"
    lines = [name.ljust(30) + "".join(c.rjust(11) for c in COLUMNS)]
    for row in result.get("rows", []):
        label = f"N = {row['orgs']}".ljust(30)
        if "error" in row:
            lines.append(f"{label}  FAILED: {row['error']}")
            continue
        cells = [
            row["streams"],
            row["consumers"],
            row["declare_s"],
            row["events"],
            row["events_per_s"],
            row.get("p50_ms", "-"),
            row.get("p99_ms", "-"),
            row["hub_cpu_s_per_1000"],
            row["idle_cpu_pct"],
            row["hub_cpu_s_per_1000_net_of_idle"],
            row["rss_mb"],
        ]
        lines.append(label + "".join(f"{c:>11}" for c in cells))
    loads = [row["load_average_before"][0] for row in result.get("rows", [])]
    if loads:
        lines.append(
            f"(load average 1 min before each N: {', '.join(str(x) for x in loads)};"
            f" {result['cpu_count']} CPUs)"
        )
    return "\n".join(lines)


def org_counts(text: str) -> list[int]:
    """``2,25,100`` → [2, 25, 100]."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers separated by commas") from None
    if not counts or min(counts) < len(LEAVES):
        raise argparse.ArgumentTypeError(f"{text!r}: each N at least {len(LEAVES)}")
    return counts


def main() -> None:
    """The scenario alone: its table, and its JSON in ``bench-results/``."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.hub_scale", description=__doc__)
    parser.add_argument("--scale-orgs", type=org_counts, default=list(DEFAULT_ORGS))
    parser.add_argument("--scale-events", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    clock = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - clock:6.1f}s] {line}", flush=True)

    started = datetime.now(UTC)
    result = asyncio.run(run(say, args.scale_orgs, args.scale_events, args.timeout))
    print()
    print(table(result))
    results = Path(__file__).resolve().parents[2] / "bench-results"
    results.mkdir(exist_ok=True)
    path = results / f"{started:%Y%m%dT%H%M%SZ}-hub-scale.json"
    document = {"command": shlex.join(sys.orig_argv), "started_at": started.isoformat(), **result}
    path.write_text(json.dumps(document, indent=2) + "\n")
    say(f"wrote {path}")
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
