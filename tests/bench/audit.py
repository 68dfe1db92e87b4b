"""The audit chain's figures: records appended per second with chaining (concurrent writers,
one record per transaction as the consumer writes them, and batches), records verified per
second, and query p95 over one million records.

The million rows are made with one set-based INSERT (their hashes are not a chain: the queries
do not care); the chain that is verified is a real one, appended through the service's code.
``python -m tests.bench`` runs this on the federation's PostgreSQL; ``python -m
tests.bench.audit`` alone starts a PostgreSQL of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deploy.postgres import EmbeddedPostgres
from deploy.processes import Supervisor
from services.audit import queries, store, verification
from services.audit.domain import Draft
from services.audit.main import service as audit_service
from shared import db
from shared.audit_trail import digest
from shared.events import new_event_id

ROWS = 1_000_000
SINGLE = 2_000  # records appended one per transaction, by WRITERS writers
WRITERS = 4
BATCHED = 100_000  # records appended in batches of BATCH (the chain then verified)
BATCH = 500
QUERIES = 200  # per kind of query
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _draft(i: int) -> Draft:
    return Draft(
        at=T0 + timedelta(seconds=i),
        service="referrals",
        actor_org="sanad",
        actor=f"user:staff{i % 40}",
        action=("referral.accepted", "payload.read", "session.login")[i % 3],
        object=f"referral:{i % 5000:05d}",
        digest=digest({"i": i}),
        outcome="ok",
        event_id=new_event_id(),
    )


async def _schema(postgres: EmbeddedPostgres, name: str) -> tuple[str, db.Pool]:
    url = await postgres.ensure_database(name)
    pool = await db.create_pool(url, max_size=WRITERS + 2)
    assert audit_service.migrations is not None
    await db.migrate(pool, "audit", [audit_service.migrations])
    return url, pool


async def appending(url: str, say: Callable[[str], None]) -> dict[str, Any]:
    writer = await store.create_writer_pool(url, max_size=WRITERS)
    try:
        per_writer = SINGLE // WRITERS

        async def one_writer(n: int) -> None:
            for i in range(per_writer):
                async with writer.acquire() as conn, conn.transaction():
                    await store.append(conn, [_draft(n * per_writer + i)])

        started = time.monotonic()
        await asyncio.gather(*(one_writer(n) for n in range(WRITERS)))
        single_s = time.monotonic() - started
        say(f"audit: {SINGLE} records, one per transaction, {WRITERS} writers: {single_s:.1f}s")
        started = time.monotonic()
        for first in range(SINGLE, SINGLE + BATCHED, BATCH):
            async with writer.acquire() as conn, conn.transaction():
                await store.append(conn, [_draft(i) for i in range(first, first + BATCH)])
        batched_s = time.monotonic() - started
        say(f"audit: {BATCHED} records in batches of {BATCH}: {batched_s:.1f}s")
        started = time.monotonic()
        async with writer.acquire() as conn:
            report = await verification.verify(conn, [])
        verify_s = time.monotonic() - started
        if not report.ok:
            raise RuntimeError(f"the benchmark's chain does not verify: {report.finding}")
        say(f"audit: verified {report.checked} records in {verify_s:.1f}s")
    finally:
        await writer.close()
    return {
        "appended_one_per_transaction": {
            "records": SINGLE,
            "writers": WRITERS,
            "records_per_s": round(SINGLE / single_s),
        },
        "appended_in_batches": {
            "records": BATCHED,
            "batch": BATCH,
            "records_per_s": round(BATCHED / batched_s),
        },
        "verified": {"records": report.checked, "records_per_s": round(report.checked / verify_s)},
    }


async def querying(pool: db.Pool, say: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    async with pool.acquire() as conn:
        # Indexes built once after the load, not row by row during it.
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'audit'"
            " AND tablename = 'entry' AND indexname <> 'entry_pkey'"
        )
        for index in indexes:
            await conn.execute(f"DROP INDEX audit.{index['indexname']}")
        await conn.execute(
            "INSERT INTO audit.entry (seq, at, service, actor_org, actor, action, object, digest,"
            " outcome, event_id, prev_hash, hash)"
            " SELECT i, $1::timestamptz + i * interval '30 seconds', 'referrals',"
            " (ARRAY['sanad','amal','jusoor','secretariat'])[1 + i % 4], 'user:staff' || i % 400,"
            " (ARRAY['referral.accepted','payload.read','session.login','referral.sent',"
            "'directory.exported'])[1 + i % 5], 'referral:' || lpad((i % 200000)::text, 6, '0'),"
            " md5(i::text) || md5((i + 1)::text), 'ok', gen_random_uuid(),"
            " md5((i - 1)::text) || md5(i::text), md5(i::text) || md5((i + 1)::text)"
            " FROM generate_series(1, $2) AS i",
            T0,
            ROWS,
            timeout=1200,
        )
        for index in indexes:
            await conn.execute(index["indexdef"], timeout=600)
        await conn.execute("ANALYZE audit.entry", timeout=600)
    load_s = time.monotonic() - started
    say(f"audit: {ROWS} records inserted (set-based) and analysed in {load_s:.1f}s")
    rng = random.Random(7)
    span = ROWS * 30

    def window() -> queries.Filters:
        start = T0 + timedelta(seconds=rng.randrange(span))
        return queries.Filters(since=start, until=start + timedelta(days=1))

    kinds: dict[str, Callable[[], tuple[queries.Filters, int | None]]] = {
        "page, no filter": lambda: (queries.Filters(), rng.randrange(ROWS)),
        "actor": lambda: (queries.Filters(actor=f"user:staff{rng.randrange(400)}"), None),
        "object": lambda: (queries.Filters(object=f"referral:{rng.randrange(200000):06d}"), None),
        "action + org": lambda: (
            queries.Filters(action="payload.read", org=rng.choice(["sanad", "amal"])),
            None,
        ),
        "one day": lambda: (window(), None),
        "one day + action": lambda: (_day_and_action(window()), None),
    }
    results = []
    async with pool.acquire() as conn:
        for name, make in kinds.items():
            timings = []
            for _ in range(QUERIES):
                filters, cursor = make()
                began = time.perf_counter()
                await queries.page(conn, queries.Log.OWN, filters, queries.Order.ASC, cursor, 100)
                timings.append((time.perf_counter() - began) * 1000)
            timings.sort()
            results.append(
                {
                    "query": name,
                    "p50_ms": round(statistics.median(timings), 2),
                    "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 2),
                    "max_ms": round(timings[-1], 2),
                }
            )
    return {"records": ROWS, "load_s": round(load_s, 1), "page": 100, "queries": results}


def _day_and_action(day: queries.Filters) -> queries.Filters:
    return queries.Filters(since=day.since, until=day.until, action="session.login")


async def run(
    say: Callable[[str], None], postgres: EmbeddedPostgres | None = None
) -> dict[str, Any]:
    """The audit figures, on ``postgres`` if given, else on a PostgreSQL of its own."""
    root: Path | None = None
    supervisor = Supervisor()
    try:
        if postgres is None:
            root = Path(tempfile.mkdtemp(prefix="relais-audit-"))
            postgres = EmbeddedPostgres(root / "postgres")
            await asyncio.to_thread(postgres.prepare)
            await supervisor.start(postgres.process(root / "logs" / "postgres.log"))
        url, pool = await _schema(postgres, "bench_audit_chain")
        await pool.close()
        chained = await appending(url, say)
        _, pool = await _schema(postgres, "bench_audit_million")
        try:
            queried = await querying(pool, say)
        finally:
            await pool.close()
        return {"benchmark": "audit", **chained, "query": queried}
    except Exception as exc:  # a row of the table, and the rest still runs
        return {"benchmark": "audit", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        await supervisor.stop_all()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def table(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"audit  FAILED: {result['error']}"
    single, batched = result["appended_one_per_transaction"], result["appended_in_batches"]
    lines = [
        "audit chain",
        f"  appended, one record per transaction, {single['writers']} writers:"
        f" {single['records_per_s']} records/s",
        f"  appended in batches of {batched['batch']}: {batched['records_per_s']} records/s",
        f"  verified: {result['verified']['records_per_s']} records/s"
        f" ({result['verified']['records']} records)",
        f"  queries over {result['query']['records']} records, a page of"
        f" {result['query']['page']}:",
        f"    {'query':<20}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}",
    ]
    for q in result["query"]["queries"]:
        lines.append(f"    {q['query']:<20}{q['p50_ms']:>10}{q['p95_ms']:>10}{q['max_ms']:>10}")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", flush=True)

    print(table(asyncio.run(run(say))))
