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
with 1 if any part failed or did not finish in time (its row says why), an event lost or
received twice included.

``--parts`` runs some of them only: the referral path's figures, with the raw pipeline beside
them in the same run, are ``--parts federation,referrals`` (add ``--seconds 10`` for a short
try). ``--profile FOLDER`` samples the node processes with py-spy during the sustained
referrals (``FOLDER/node-*.folded``); the profile of a run, by hand, is
``py-spy record --pid <node pid> --rate 200 --format flamegraph -o node.svg``, or
``py-spy top --pid <node pid> --nonblocking`` to watch it. PostgreSQL's side:
``--pg-stat-statements`` loads the extension in the referrals' PostgreSQL and writes its top
statements by total time to the JSON.
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
from pathlib import Path
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
# What --parts chooses from; the federation's servers carry the first five.
PARTS = (
    "federation",
    "match",
    "replica",
    "audit",
    "store-forward",
    "hub-cluster",
    "hub-scale",
    "referrals",
    "web",
)
ON_FEDERATION = {"federation", "match", "replica", "audit", "store-forward"}


def say(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {line}", flush=True)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def parts(text: str) -> set[str]:
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = chosen - set(PARTS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown part {', '.join(sorted(unknown)) or '(none)'}; parts: {', '.join(PARTS)}"
        )
    return chosen


def rates(text: str) -> list[float]:
    values = [float(value) for value in text.split(",") if value.strip()]
    if not values or any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError(f"{text}: positive referrals/s, comma-separated")
    return values


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
        "--rates",
        type=rates,
        default=[50.0, 5.0],
        help="referrals/s of the fixed-load runs, one run each (50,5)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="length of each fixed-load run (60)"
    )
    parser.add_argument(
        "--parts",
        type=parts,
        default=set(PARTS),
        help=f"the parts to run, comma-separated (all): {','.join(PARTS)}",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the node processes during the sustained referrals, into this folder",
    )
    parser.add_argument(
        "--pg-stat-statements",
        action="store_true",
        help="the top PostgreSQL statements of the sustained referrals, in the JSON",
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
    chosen: set[str] = args.parts
    results: list[Figures] = []
    document: dict[str, Any] = {
        "benchmark": "relais",
        "started_at": started.isoformat(),
        "command": shlex.join(sys.orig_argv),
        "timeout_s": args.timeout,
        "parts": [part for part in PARTS if part in chosen],
    }
    tables: list[str] = []
    failed = False
    log_problems: list[str] = []
    if chosen & ON_FEDERATION:
        async with federation(say, keep=args.keep) as fed:
            document["machine"] = await report.machine(fed.net.postgres.url(), fed.net.root)
            if "federation" in chosen:
                for key, (path, scenario) in scenarios(writers=args.writers).items():
                    say(f"{key}: {path}, {args.events} events")
                    arrivals = Arrivals(key, path, args.events, prefix=f"{run_id}-{key.lower()}-")
                    figures = await run_one(fed, scenario, arrivals, args.timeout)
                    done = f"{figures.received} events in {figures.wall_s}s"
                    say(f"{key}: {figures.error or done}")
                    results.append(figures)
                document["federation"] = {
                    "benchmark": "federation",
                    "events": args.events,
                    "writers": args.writers,
                    "subject": SUBJECT,
                    "sync_interval": "always",
                    "warmup_s": round(fed.warmup_s, 3),
                    "results": report.as_json(results),
                }
                tables.append(report.table(results))
                # A lost or repeated event fails the run, as an error does.
                failed |= any(r.error or r.duplicates or r.received < r.events for r in results)
            if "match" in chosen:
                say("match: directory match query and search")
                matched = await run_match(fed, args.timeout)
                if "error" in matched:
                    say(f"match: {matched['error']}")
                document["directory_match"] = matched
                tables.append(report.match_table(matched))
                failed |= "error" in matched
            if "replica" in chosen:
                say(f"replica: {args.replica_events} hub broadcasts while amal's directory is down")
                caught_up = await replica.run(fed, args.replica_events, args.timeout, say)
                if caught_up.error:
                    say(f"replica: {caught_up.error}")
                document["replica_catch_up"] = replica.as_json(caught_up)
                tables.append(report.replica_table(caught_up))
                failed |= caught_up.error is not None
            if "audit" in chosen:
                say("audit: the chain appended and verified, queries over a million records")
                audited = await audit.run(say, fed.net.postgres)
                if "error" in audited:
                    say(f"audit: {audited['error']}")
                document["audit"] = audited
                tables.append(audit.table(audited))
                failed |= "error" in audited
            if "store-forward" in chosen:
                stored = await store_forward.run(
                    fed, args.backlog, args.hub_backlog, args.timeout, say
                )
                document["store_and_forward"] = stored
                tables.append(store_forward.table(stored))
                failed |= any("error" in stored[key] for key in ("node_outage", "hub_outage"))
        log_problems = fed.log_problems
    if "hub-cluster" in chosen:
        say(f"hub cluster: three servers, R3 streams, {args.cluster_events} events per run")
        clustered = await hub_cluster.run(say, args.cluster_events, args.timeout)
        document["hub_cluster"] = clustered
        tables.append(hub_cluster.table(clustered))
        failed |= "error" in clustered
    if "hub-scale" in chosen:
        scaled = await hub_scale.run(say, args.scale_orgs, args.scale_events, args.timeout)
        document["hub_scale"] = scaled
        tables.append(hub_scale.table(scaled))
        failed |= "error" in scaled
    if "referrals" in chosen:
        referred = await referrals.run(
            say,
            count=args.referrals,
            posters=args.posters,
            rates=args.rates,
            seconds=args.seconds,
            limit=args.timeout,
            profile=args.profile,
            statements=args.pg_stat_statements,
        )
        if "error" in referred:
            say(f"referrals: {referred['error']}")
        raw = {r.scenario: r.events_per_s for r in results if not r.error and r.events_per_s}
        if "sustained" in referred:
            per_s = referred["sustained"]["received_per_s"]
            # The figures of the issue: against the raw pipeline B, measured in the same run.
            for key, events_per_s in raw.items():
                referred[f"ratio_to_{key}"] = round(per_s / events_per_s, 3)
        if "A" in raw and "B" in raw:
            document["federation"]["ratio_A_to_B"] = round(raw["A"] / raw["B"], 3)
        document["referrals"] = referred
        tables.append(referrals.table(referred, raw))
        failed |= "error" in referred
    if "web" in chosen:
        say(f"web: page render times with {web.REFERRALS} referrals")
        rendered = await web.run(say, args.timeout)
        if "error" in rendered:
            say(f"web: {rendered['error']}")
        document["web_pages"] = rendered
        tables.append(web.table(rendered))
        failed |= "error" in rendered
    for table in tables:
        print()
        print(table)
    print()
    if log_problems:
        say(f"the servers' logs have {len(log_problems)} error or warning lines, first:")
        for line in log_problems[:5]:
            print(f"    {line}")
    document["server_log_problems"] = log_problems
    written = report.write_json(started, document)
    say(f"wrote {written}")
    return 1 if failed else 0


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(bench(args)))


main()
