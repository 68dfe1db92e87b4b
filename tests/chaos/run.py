"""One chaos run: the network up, the clients sending and the faults falling for ``duration``
seconds, then the heal, quiescence, the checks and the figures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.feed import FEED
from tests.bench import report
from tests.chaos import figures
from tests.chaos.checks import Snapshot, Verdict, judge
from tests.chaos.driver import Driver, Ledger, watch_received
from tests.chaos.faults import KINDS, Fault, Injector
from tests.chaos.network import RECIPIENT, SENDERS, ChaosNetwork, chaos_network

Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    # A full run: 21 min of faults and traffic, within 25 with the start, the heal and the
    # checks; at 8.5/s, over 10,000 referrals; at about 5 s a fault (a killed part is waited
    # for, and the launcher backs off a part killed again within a minute), over 200 faults.
    duration: float = 1260.0
    rate: float = 8.5  # referrals a second, all senders together
    seed: int = 1
    kinds: tuple[str, ...] = KINDS
    every_kind_first: bool = False  # each kind once, in order, before drawing at random
    gap: tuple[float, float] = (0.3, 1.5)  # calm between two faults
    hold: tuple[float, float] = (1.0, 4.0)  # a pause, a cut, a clock jump
    settle_within: float = 180.0  # for creates still retrying after the last fault
    quiet_within: float = 300.0  # for the network to deliver everything after the heal
    keep: bool = False  # keep the network's folder (its logs)
    write: bool = True  # the figures to bench-results/
    hub_cluster: bool = False  # the hub as three clustered nats-servers (tests/chaos/cluster.py)


@dataclass
class Result:
    document: dict[str, Any]
    verdict: Verdict
    path: Path | None


async def run(options: Options, say: Say = print) -> Result:
    started_wall = datetime.now(UTC)
    t0 = time.monotonic()
    async with chaos_network(keep=options.keep, hub_cluster=options.hub_cluster) as chaos:
        up_s = time.monotonic() - t0
        say(f"chaos: network up in {up_s:.1f}s ({chaos.root})")
        ledger = Ledger()
        watchers = await watch_received(chaos, ledger)
        driver = Driver(chaos, ledger, options.rate, options.seed)
        injector = Injector(chaos, random.Random(options.seed), options.kinds, options.hold)
        plan = options.kinds if options.every_kind_first else ()
        try:
            begin = time.monotonic()
            until = begin + options.duration
            faulting = asyncio.create_task(injector.run(until, options.gap, plan))
            sending = asyncio.create_task(
                driver.send_until(lambda: faulting.done() and time.monotonic() >= until)
            )
            progress = asyncio.create_task(_progress(say, ledger, injector.faults, begin))
            try:
                await faulting
                await sending
            finally:
                progress.cancel()
                faulting.cancel()
                sending.cancel()
                # Their own clean-up first (a paused process is continued, a cut link healed).
                await asyncio.gather(faulting, sending, return_exceptions=True)
                await injector.heal_all()
            healed = time.monotonic()
            say(f"chaos: healed; {len(driver.tasks)} create(s) still retrying")
            unresolved = await driver.settle(options.settle_within)
            settled = time.monotonic()
            quiet = await _quiescence(chaos, ledger, options.quiet_within)
            quiet_at = time.monotonic()
            left_at_end = await busy(chaos)
            say(
                f"chaos: quiet after {quiet_at - settled:.1f}s"
                f" ({'all' if quiet else 'NOT all'} received back;"
                f" {left_at_end} message(s) or row(s) still to deliver)"
            )
            snap = await snapshot(chaos)
            verdict = judge(ledger.sent, snap)
            machine = await report.machine(chaos.net.postgres.url(), chaos.root)
            checked = time.monotonic()
            say(f"chaos: checked in {checked - quiet_at:.1f}s; stopping the network")
        finally:
            await driver.close()
            for nc in watchers:
                with contextlib.suppress(Exception):
                    await nc.close()
    doc = figures.document(
        settings={
            "duration_s": options.duration,
            "rate_per_s": options.rate,
            "seed": options.seed,
            "kinds": list(options.kinds),
            "gap_s": list(options.gap),
            "hold_s": list(options.hold),
            "senders": list(SENDERS),
            "recipient": RECIPIENT,
            # Only in that mode: a single-hub run's document stays as it was.
            **({"hub": "cluster of 3 nats-servers, R3 streams"} if options.hub_cluster else {}),
        },
        faults=injector.faults,
        verdict=verdict,
        answers=ledger.answers,
        acks=ledger.ack_times,
        received=sorted(ledger.received_at),
        timings={
            "network_up": round(up_s, 1),
            "faults_and_traffic": round(healed - begin, 1),
            "settle": round(settled - healed, 1),
            "quiescence": round(quiet_at - settled, 1),
            "unresolved_creates": unresolved,
        },
        quiet={"all_received_back": quiet, "work_left_at_the_end": left_at_end},
        machine=machine,
    )
    say(f"chaos: network stopped in {time.monotonic() - checked:.1f}s")
    say(figures.table(doc))
    path = figures.write_json(started_wall, doc) if options.write else None
    if path is not None:
        say(f"chaos: figures written to {path}")
    return Result(doc, verdict, path)


async def _progress(say: Say, ledger: Ledger, faults: list[Fault], begin: float) -> None:
    while True:
        await asyncio.sleep(30)
        acked = sum(1 for s in ledger.sent if s.referral_id is not None)
        kinds = Counter(f.kind for f in faults)
        say(
            f"chaos: {time.monotonic() - begin:.0f}s, {len(faults)} faults, {acked}/"
            f"{len(ledger.sent)} acknowledged, {len(ledger.received_at)} received; {dict(kinds)}"
        )


async def _quiescence(chaos: ChaosNetwork, ledger: Ledger, within: float) -> bool:
    """Until every acknowledged referral is past ``sent`` at its sender (True), or the network
    has nothing left to do for a few seconds: no outbox row unsent, no message pending or
    waiting for a redelivery at any consumer (False: what is missing will not come by
    itself), or ``within`` seconds (False)."""
    wanted = {s.referral_id for s in ledger.sent if s.referral_id is not None}
    deadline, idle_since = time.monotonic() + within, None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            for sender in SENDERS:
                rows = await _fetch(
                    chaos,
                    sender,
                    "SELECT referral_id::text FROM referrals.referrals"
                    " WHERE box = 'outbox' AND status <> 'sent'",
                )
                wanted -= {r[0] for r in rows}
            if not wanted:
                return True
        if await busy(chaos):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 5:
            return False
        await asyncio.sleep(1)
    return False


async def busy(chaos: ChaosNetwork) -> int:
    """What the nodes still have to do, as their ``/api/v1/node/status`` says (what ``relais
    status`` shows): outbox rows unsent, and messages pending or awaiting a redelivery at
    every consumer but the member systems' feeds (no member system runs during a chaos run, so
    theirs only grow); a node that does not answer counts as busy."""
    left = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for node in chaos.creds["nodes"]:
            headers = {"Authorization": f"Bearer {chaos.token(node, 'admin')}"}
            try:
                response = await client.get(
                    f"{chaos.url(node)}/api/v1/node/status", headers=headers
                )
                status = response.raise_for_status().json()
            except (httpx.HTTPError, ValueError):
                left += 1
                continue
            left += sum(n if n is not None else 1 for n in status["outbox_unsent"].values())
            for stream in status["streams"]:
                if stream["name"] == FEED:  # the demo's member systems: nobody reads them here
                    continue
                for consumer in stream["consumers"]:
                    left += consumer["pending"] + consumer["ack_pending"]
                left += sum(source.get("lag") or 0 for source in stream["sources"])
    return left


async def _fetch(chaos: ChaosNetwork, node: str, query: str, *args: object) -> list[Any]:
    conn = await asyncpg.connect(chaos.net.database_url(chaos.net.plan(node)), timeout=10)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def snapshot(chaos: ChaosNetwork) -> Snapshot:
    """What the nodes hold: their databases, read as an operator would, their audit chains
    through ``relais audit verify``, their dead letters through the node's admin API."""
    outbox, keys, received = {}, {}, {}
    for sender in SENDERS:
        rows = await _fetch(
            chaos,
            sender,
            "SELECT referral_id::text, status FROM referrals.referrals"
            " WHERE box = 'outbox' AND to_org = $1",
            RECIPIENT,
        )
        outbox[sender] = {r[0]: r[1] for r in rows}
        rows = await _fetch(
            chaos, sender, "SELECT key, referral_id::text FROM referrals.idempotency"
        )
        keys[sender] = {r[0]: r[1] for r in rows}
        rows = await _fetch(
            chaos,
            sender,
            "SELECT referral_id::text, count(*) FROM referrals.history"
            " WHERE change = 'received' GROUP BY referral_id",
        )
        received[sender] = Counter({r[0]: int(r[1]) for r in rows})
    rows = await _fetch(
        chaos,
        RECIPIENT,
        "SELECT referral_id::text, from_org, status FROM referrals.referrals WHERE box = 'inbox'",
    )
    inbox = {r[0]: (r[1], r[2]) for r in rows}
    rows = await _fetch(
        chaos,
        RECIPIENT,
        "SELECT referral_id::text, count(*) FROM referrals.history"
        " WHERE change = 'sent' GROUP BY referral_id",
    )
    snap = Snapshot(outbox, keys, received, inbox, Counter({r[0]: int(r[1]) for r in rows}))
    nodes = list(chaos.creds["nodes"])
    chains = await asyncio.gather(*(verify_chain(chaos, node) for node in nodes))
    letters = await asyncio.gather(*(dead_letters(chaos, node) for node in nodes))
    snap.chains, snap.dead_letters = (
        dict(zip(nodes, chains, strict=True)),
        dict(zip(nodes, letters, strict=True)),
    )
    return snap


async def verify_chain(chaos: ChaosNetwork, node: str) -> dict[str, Any]:
    """``relais audit verify --node <node> --json``: the operator's own check."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.cli",
        "audit",
        "verify",
        "--node",
        node,
        "--credentials",
        str(chaos.credentials_file),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RELAIS_LANG": "en"},
    )
    out, err = await process.communicate()
    try:
        found: dict[str, Any] = json.loads(out)
    except ValueError:
        return {"ok": False, "error": (err or out).decode()[-500:]}
    return found


async def dead_letters(chaos: ChaosNetwork, node: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {chaos.token(node, 'admin')}"}
    async with httpx.AsyncClient(base_url=chaos.url(node), headers=headers, timeout=30) as client:
        response = await client.get("/api/v1/node/dead-letters", params={"limit": 1000})
        response.raise_for_status()
        letters: list[dict[str, Any]] = response.json()
        return letters


def quiet_logs() -> None:
    """The launcher logs each restart; the run says what matters itself."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")


def parse_kinds(text: str, known: Sequence[str] = KINDS) -> tuple[str, ...]:
    chosen = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in chosen if k not in known]
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return chosen


__all__: Sequence[str] = ("Options", "Result", "parse_kinds", "quiet_logs", "run")
