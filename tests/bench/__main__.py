"""``python -m tests.bench``: the federation, the directory's match query, a replica's catch-up.

Starts the real servers (no nodes) and, on them:
1. the federation: scenario A (outbox → relay → federation → ``Bus`` consumer) against
   scenario B (nats-py ``publish_async`` → federation → pull consumer);
2. the directory's match query and search (``tests.bench.match``) on the servers' PostgreSQL;
3. a replica's catch-up (``tests.bench.replica``): the hub's broadcasts pile up in amal's
   ``INBOX`` while nothing consumes, then the directory's real consumer applies them;
4. store-and-forward (``tests.bench.store_forward``): a backlog of ``--backlog`` events drains
   to amal after its nats-server was down, and ``--hub-backlog`` after the hub's was;
5. a hub of three servers with R3 streams (``tests.bench.hub_cluster``): ``--cluster-events``
   sanad → amal with all three up, with one killed under load, and with one down;
5b. one hub with N member accounts (``tests.bench.hub_scale``), for each N of
   ``--scale-orgs``: ``--scale-events`` sanad → amal, the hub's CPU and memory, the topology's
   declaration time;
6. referrals end to end (``tests.bench.referrals``), on a network of its own with node
   processes: sustained referrals/s from sanad to amal, and create → received latency at a
   fixed offered load, beside scenario A's raw pipeline;
7. web pages (``tests.bench.web``), on a network of its own: server render time of the inbox,
   the coordinator's dashboard and the network log search with 100,000 referrals.
Prints a table for each and writes them all to ``bench-results/<UTC time>-bench.json``. Exits
with 1 if any part failed or did not finish in time (its row says why).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.bench import (
    audit,
    hub_cluster,
    hub_scale,
    match,
    referrals,
    replica,
    report,
    store_forward,
    web,
)
from tests.bench.measure import Arrivals, Figures, ScenarioFailed
from tests.bench.scenarios import Scenario, scenarios
from tests.bench.topology import SUBJECT, Federation, federation

STARTED = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {line}", flush=True)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="events per scenario (2000)")
    parser.add_argument(
        "--writers", type=int, default=4, help="concurrent outbox writers in scenario A (4)"
    )
    parser.add_argument(
        "--replica-events",
        type=positive,
        default=2000,
        help=f"broadcasts the replica catches up on, for {replica.ORGANISATIONS} organisations"
        " (2000)",
    )
    parser.add_argument(
        "--referrals", type=positive, default=300, help="referrals in the sustained run (300)"
    )
    parser.add_argument(
        "--posters", type=positive, default=8, help="concurrent clients posting referrals (8)"
    )
    parser.add_argument(
        "--rate", type=float, default=5.0, help="referrals/s of the fixed-load run (5)"
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="length of the fixed-load run (30)"
    )
    parser.add_argument(
        "--backlog", type=positive, default=10_000, help="events waiting for amal (10000)"
    )
    parser.add_argument(
        "--hub-backlog", type=positive, default=2000, help="events waiting for the hub (2000)"
    )
    parser.add_argument(
        "--cluster-events", type=positive, default=3000, help="events per hub-cluster run (3000)"
    )
    parser.add_argument(
        "--scale-orgs",
        type=hub_scale.org_counts,
        default=list(hub_scale.DEFAULT_ORGS),
        help="member accounts on the one hub, one run each (2,25,100)",
    )
    parser.add_argument(
        "--scale-events", type=positive, default=3000, help="events per hub-scale run (3000)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds per scenario (120)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' folder and logs")
    return parser.parse_args()


async def run_one(fed: Federation, scenario: Scenario, arrivals: Arrivals, limit: float) -> Figures:
    """Run one scenario within ``limit`` seconds; a failure is a row of the table, not a crash."""
    try:
        async with asyncio.timeout(limit) as within:
            await scenario(fed, arrivals, say)
    except TimeoutError:
        if not within.expired():
            raise
        return arrivals.figures(
            error=f"only {len(arrivals.latencies_ms)}/{arrivals.expected} events arrived"
            f" within {limit:.0f}s (last seen: {arrivals.last_progress or 'nothing'})"
        )
    except ScenarioFailed as exc:
        return arrivals.figures(error=str(exc))
    return arrivals.figures()


async def run_match(fed: Federation, limit: float) -> dict[str, Any]:
    """The match benchmark on the federation's PostgreSQL; a failure is a row, not a crash."""
    try:
        async with asyncio.timeout(limit) as within:
            return await match.run(lambda line: say(f"match: {line}"), fed.net.postgres)
    except TimeoutError:
        if not within.expired():
            raise
        error = f"not done within {limit:.0f}s"
    except Exception as exc:  # a row of the table, and the rest still runs
        error = f"{type(exc).__name__}: {exc}"
    return {"benchmark": "directory-match", "error": error}


async def bench(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    run_id = uuid.uuid4().hex[:8]
    results: list[Figures] = []
    async with federation(say, keep=args.keep) as fed:
        facts = await report.machine(fed.net.postgres.url(), fed.net.root)
        for key, (path, scenario) in scenarios(writers=args.writers).items():
            say(f"{key}: {path}, {args.events} events")
            arrivals = Arrivals(key, path, args.events, prefix=f"{run_id}-{key.lower()}-")
            figures = await run_one(fed, scenario, arrivals, args.timeout)
            say(f"{key}: {figures.error or f'{figures.received} events in {figures.wall_s}s'}")
            results.append(figures)
        say("match: directory match query and search")
        matched = await run_match(fed, args.timeout)
        if "error" in matched:
            say(f"match: {matched['error']}")
        say(f"replica: {args.replica_events} hub broadcasts while amal's directory is down")
        caught_up = await replica.run(fed, args.replica_events, args.timeout, say)
        if caught_up.error:
            say(f"replica: {caught_up.error}")
        say("audit: the chain appended and verified, queries over a million records")
        audited = await audit.run(say, fed.net.postgres)
        if "error" in audited:
            say(f"audit: {audited['error']}")
        stored = await store_forward.run(fed, args.backlog, args.hub_backlog, args.timeout, say)
    say(f"hub cluster: three servers, R3 streams, {args.cluster_events} events per run")
    clustered = await hub_cluster.run(say, args.cluster_events, args.timeout)
    scaled = await hub_scale.run(say, args.scale_orgs, args.scale_events, args.timeout)
    referred = await referrals.run(
        say,
        count=args.referrals,
        posters=args.posters,
        rate=args.rate,
        seconds=args.seconds,
        limit=args.timeout,
    )
    if "error" in referred:
        say(f"referrals: {referred['error']}")
    say(f"web: page render times with {web.REFERRALS} referrals")
    rendered = await web.run(say, args.timeout)
    if "error" in rendered:
        say(f"web: {rendered['error']}")
    raw = next((r.events_per_s for r in results if r.scenario == "A" and not r.error), None)
    if raw and "sustained" in referred:
        referred["ratio_to_raw_pipeline"] = round(referred["sustained"]["received_per_s"] / raw, 3)
    for table in (
        report.table(results),
        report.match_table(matched),
        report.replica_table(caught_up),
        referrals.table(referred, raw),
        audit.table(audited),
        store_forward.table(stored),
        hub_cluster.table(clustered),
        hub_scale.table(scaled),
        web.table(rendered),
    ):
        print()
        print(table)
    print()
    if fed.log_problems:
        say(f"the servers' logs have {len(fed.log_problems)} error or warning lines, first:")
        for line in fed.log_problems[:5]:
            print(f"    {line}")
    written = report.write_json(
        started,
        {
            "benchmark": "relais",
            "started_at": started.isoformat(),
            "command": shlex.join(sys.orig_argv),
            "timeout_s": args.timeout,
            "machine": facts,
            "federation": {
                "benchmark": "federation",
                "events": args.events,
                "writers": args.writers,
                "subject": SUBJECT,
                "sync_interval": "always",
                "warmup_s": round(fed.warmup_s, 3),
                "results": report.as_json(results),
            },
            "directory_match": matched,
            "replica_catch_up": replica.as_json(caught_up),
            "referrals": referred,
            "audit": audited,
            "store_and_forward": stored,
            "hub_cluster": clustered,
            "hub_scale": scaled,
            "web_pages": rendered,
            "server_log_problems": fed.log_problems,
        },
    )
    say(f"wrote {written}")
    failed = (
        any(r.error for r in results)
        or "error" in matched
        or caught_up.error is not None
        or "error" in referred
        or "error" in audited
        or any("error" in stored[key] for key in ("node_outage", "hub_outage"))
        or "error" in clustered
        or "error" in scaled
        or "error" in rendered
    )
    return 1 if failed else 0


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(bench(args)))


main()
