"""``python -m tests.bench.match``: how long the directory takes to suggest who receives a referral.

On a fresh embedded PostgreSQL started through the launcher, loads a directory of 1,000
organisations with 10 services each (random but shaped like the network: reference categories,
cities, languages; most services open, some waitlisted or closed; some restricted to a
population, a sex or an age), then times 500 match queries (random category, city, languages
and profile) through the real ``search.candidates`` and ``matching.rank``, one after another
on one connection, and 200 searches through ``search.search_services``. Prints a table; ``run``
returns the figures. The server is stopped and its folder deleted at the end. ``python -m
tests.bench`` runs the same on the federation's PostgreSQL (``run(say, postgres)``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from deploy.postgres import EmbeddedPostgres
from deploy.processes import Supervisor
from services.directory import matching, reference, search, store
from shared import db
from shared.contracts.directory import OrganisationPublished

MIGRATIONS = Path(search.__file__).parent / "migrations"
DATABASE = "bench_match"
ORGANISATIONS = 1000
SERVICES_PER_ORGANISATION = 10
MATCHES = 500
SEARCHES = 200
WARM_UP = 20  # queries run first and not counted: connection caches and plans settle
SEED = 20260214
# Who speaks what, roughly: staff languages often, the people's languages less so.
STAFF_LANGUAGES = {"fra": 0.9, "ary": 0.8, "ara": 0.5, "eng": 0.5, "spa": 0.15}
PEOPLE_LANGUAGES = ("wol", "bam", "lin", "ful", "sus", "hau", "pcm", "tir", "amh", "som")
POPULATIONS = [code for code in reference.populations() if code != matching.EVERYONE]
WORDS = ("accueil", "juridique", "santé", "écoute", "femmes", "enfants", "urgence", "soutien")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty), ``share`` in (0, 1]."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def figures(name: str, timings_ms: Sequence[float], **extra: float) -> dict[str, Any]:
    return {
        "query": name,
        "n": len(timings_ms),
        "p50_ms": round(percentile(timings_ms, 0.50), 2),
        "p95_ms": round(percentile(timings_ms, 0.95), 2),
        "p99_ms": round(percentile(timings_ms, 0.99), 2),
        "max_ms": round(max(timings_ms), 2),
        **{key: round(value, 1) for key, value in extra.items()},
    }


def table(rows: list[dict[str, Any]]) -> str:
    columns = ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms", "candidates", "suggestions")
    width = max(len("query"), *(len(row["query"]) for row in rows))
    lines = ["query".ljust(width) + "".join(c.rjust(12) for c in columns)]
    for row in rows:
        cells = (str(row.get(column, "")) for column in columns)
        lines.append(row["query"].ljust(width) + "".join(c.rjust(12) for c in cells))
    return "\n".join(lines)


def directory(rng: random.Random) -> list[OrganisationPublished]:
    """``ORGANISATIONS`` records of ``SERVICES_PER_ORGANISATION`` services each."""
    categories = list(reference.categories())
    cities = list(reference.cities().values())
    records = []
    for n in range(ORGANISATIONS):
        base = rng.choice(cities)
        neighbours = [c.code for c in cities if c.region == base.region]
        speaks = [code for code, share in STAFF_LANGUAGES.items() if rng.random() < share]
        speaks += rng.sample(PEOPLE_LANGUAGES, rng.choice((0, 0, 1, 2, 3)))
        services = []
        for s in range(SERVICES_PER_ORGANISATION):
            category = rng.choice(categories)
            area: dict[str, Any] = {}
            where = rng.random()
            if where < 0.5:
                nearby = rng.sample(neighbours, min(len(neighbours), rng.randint(0, 2)))
                area["cities"] = sorted({base.code, *nearby})
            elif where < 0.75:
                area["regions"] = [base.region]
            elif where < 0.85:
                area["national"] = True  # the rest name no area: offered in the base city
            eligibility: dict[str, Any] = {}
            if rng.random() < 0.2:
                eligibility["populations"] = rng.sample(POPULATIONS, rng.randint(1, 2))
            if rng.random() < 0.1:
                eligibility["sex"] = "female"
            if rng.random() < 0.1:
                eligibility["min_age"], eligibility["max_age"] = rng.choice(((0, 17), (18, None)))
            services.append(
                {
                    "service_id": f"s{s}_{category}"[:40],
                    "category": category,
                    "description": {
                        "fr": f"Service {' '.join(rng.sample(WORDS, 3))} à {base.label['fr']}",
                        "ar": base.label["ar"],
                    },
                    "languages": rng.sample(speaks, max(1, len(speaks) - rng.randint(0, 2)))
                    if speaks
                    else ["fra"],
                    "eligibility": eligibility,
                    "capacity": rng.choices(("open", "waitlist", "closed"), (65, 25, 10))[0],
                    "takes_referrals": rng.random() < 0.9,
                    **area,
                }
            )
        status = rng.choices(("active", "applicant", "suspended"), (90, 5, 5))[0]
        records.append(
            OrganisationPublished.model_validate(
                {
                    "org_id": f"org_{n:04d}",
                    "version": 1,
                    "name": {"fr": f"Association {n:04d} de {base.label['fr']}"},
                    "kind": "ngo",
                    "status": status,
                    "city": base.code,
                    "services": services,
                }
            )
        )
    return records


def match_request(rng: random.Random) -> matching.MatchRequest:
    """A referral as a caseworker would describe it: often a language, sometimes a profile."""
    languages = rng.sample(PEOPLE_LANGUAGES, rng.randint(0, 1))
    languages += rng.sample(("fra", "ary", "eng", "spa"), rng.randint(0, 2))
    return matching.MatchRequest(
        category=rng.choice(list(reference.categories())),
        city=rng.choice(list(reference.cities())),
        languages=languages,
        populations=rng.sample(POPULATIONS, rng.choice((0, 0, 1, 2))),
        age=rng.choice((None, 8, 16, 25, 40)),
        sex=rng.choice((None, "female", "male")),
        urgency=rng.choice(list(matching.Urgency)),
    )


def search_query(rng: random.Random) -> search.ServiceQuery:
    return search.ServiceQuery(
        categories=(rng.choice(list(reference.categories())),) if rng.random() < 0.7 else (),
        city=search.place_of(rng.choice(list(reference.cities()))) if rng.random() < 0.7 else None,
        languages=(rng.choice(PEOPLE_LANGUAGES),) if rng.random() < 0.3 else (),
        words=search.words_of(rng.choice(WORDS)) if rng.random() < 0.3 else (),
    )


async def time_matches(pool: db.Pool, rng: random.Random) -> list[dict[str, Any]]:
    org_ids = [f"org_{n:04d}" for n in range(ORGANISATIONS)]
    total, loading, ranking, found, kept = [], [], [], [], []
    async with pool.acquire() as conn:
        for index in range(WARM_UP + MATCHES):
            request, sender = match_request(rng), rng.choice(org_ids)
            started = time.perf_counter()
            # search.suggest, phase by phase, to see where the time goes.
            place = search.place_of(request.city) if request.city else None
            candidates = await search.candidates(conn, request, place=place, sender_org=sender)
            loaded = time.perf_counter()
            suggestions = matching.rank(request, candidates, place=place, sender_org=sender)
            suggestions = suggestions[: request.limit]
            ranked = time.perf_counter()
            if index == 0:
                assert suggestions == await search.suggest(conn, request, sender_org=sender)
            if index < WARM_UP:
                continue
            total.append((ranked - started) * 1000)
            loading.append((loaded - started) * 1000)
            ranking.append((ranked - loaded) * 1000)
            found.append(len(candidates))
            kept.append(len(suggestions))
    mean = {"candidates": sum(found) / len(found), "suggestions": sum(kept) / len(kept)}
    return [
        figures("match (suggest)", total, **mean),
        figures("  sql prefilter + load", loading),
        figures("  ranking", ranking),
    ]


async def time_searches(pool: db.Pool, rng: random.Random) -> dict[str, Any]:
    timings = []
    async with pool.acquire() as conn:
        for index in range(WARM_UP + SEARCHES):
            query = search_query(rng)
            started = time.perf_counter()
            await search.search_services(conn, query, limit=20)
            if index >= WARM_UP:
                timings.append((time.perf_counter() - started) * 1000)
    return figures("search (page of 20)", timings)


async def load(pool: db.Pool, records: list[OrganisationPublished]) -> None:
    for start in range(0, len(records), 100):
        async with pool.acquire() as conn, conn.transaction():
            for record in records[start : start + 100]:
                await store.save_organisation(conn, record)
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE directory.service; ANALYZE directory.organisation")


@asynccontextmanager
async def database(
    say: Callable[[str], None], postgres: EmbeddedPostgres | None
) -> AsyncIterator[db.Pool]:
    """A migrated directory schema in database ``bench_match``: on ``postgres`` if given (it is
    left running), else on a PostgreSQL of its own, stopped and deleted on exit."""
    root: Path | None = None
    supervisor = Supervisor()
    try:
        started = time.monotonic()
        if postgres is None:
            root = Path(tempfile.mkdtemp(prefix="relais-match-"))  # short: the socket path
            postgres = EmbeddedPostgres(root / "postgres")
            await asyncio.to_thread(postgres.prepare)
            await supervisor.start(postgres.process(root / "logs" / "postgres.log"))
        pool = await db.create_pool(await postgres.ensure_database(DATABASE), max_size=2)
        try:
            await db.migrate(pool, "directory", [MIGRATIONS])
            where = f"under {root}" if root else "on the federation's PostgreSQL"
            say(f"database {DATABASE} ready in {time.monotonic() - started:.1f}s {where}")
            yield pool
        finally:
            await pool.close()
    finally:
        await supervisor.stop_all()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


async def run(
    say: Callable[[str], None], postgres: EmbeddedPostgres | None = None
) -> dict[str, Any]:
    """Load the directory and time the queries, on ``postgres`` if given (it must not hold a
    ``bench_match`` database yet), else on a PostgreSQL started and stopped here."""
    rng = random.Random(SEED)
    async with database(say, postgres) as pool:
        try:
            records = directory(rng)
            started = time.monotonic()
            await load(pool, records)
            load_s = time.monotonic() - started
            organisations, services = len(records), sum(len(r.services) for r in records)
            say(f"loaded {organisations} organisations, {services} services in {load_s:.1f}s")
            # The generated records are this benchmark's, not a node's: without them, and with
            # the start-up heap frozen, a full collection of them (~250 ms seen) is not timed as
            # a query.
            del records
            gc.collect()
            gc.freeze()
            rows = await time_matches(pool, rng)
            say(f"{MATCHES} match queries timed")
            rows.append(await time_searches(pool, rng))
            say(f"{SEARCHES} searches timed")
        finally:
            gc.unfreeze()
    return {
        "benchmark": "directory-match",
        "organisations": organisations,
        "services": services,
        "load_s": round(load_s, 2),
        "seed": SEED,
        "results": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.match", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    began = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {line}", flush=True)

    result = asyncio.run(run(say))
    print()
    print(table(result["results"]))
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
