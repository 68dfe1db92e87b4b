"""``python -m tests.bench``: the federation benchmark, outbox path against the raw baseline.

Starts the real servers (no nodes), runs scenario A (outbox → relay → federation → ``Bus``
consumer) and scenario B (nats-py ``publish_async`` → federation → pull consumer) on the same
network, prints a table and writes ``bench-results/<UTC time>-federation.json``. Exits with 1 if
a scenario did not get all its events through in time.
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

from tests.bench import report
from tests.bench.measure import Arrivals, Figures, ScenarioFailed
from tests.bench.scenarios import Scenario, scenarios
from tests.bench.topology import SUBJECT, Federation, federation

STARTED = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {line}", flush=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="events per scenario (2000)")
    parser.add_argument(
        "--writers", type=int, default=4, help="concurrent outbox writers in scenario A (4)"
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
    print()
    print(report.table(results))
    print()
    if fed.log_problems:
        say(f"the servers' logs have {len(fed.log_problems)} error or warning lines, first:")
        for line in fed.log_problems[:5]:
            print(f"    {line}")
    written = report.write_json(
        started,
        {
            "benchmark": "federation",
            "started_at": started.isoformat(),
            "command": shlex.join(sys.orig_argv),
            "events": args.events,
            "writers": args.writers,
            "timeout_s": args.timeout,
            "subject": SUBJECT,
            "sync_interval": "always",
            "machine": facts,
            "warmup_s": round(fed.warmup_s, 3),
            "results": report.as_json(results),
            "server_log_problems": fed.log_problems,
        },
    )
    say(f"wrote {written}")
    return 1 if any(r.error for r in results) else 0


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(bench(args)))


main()
