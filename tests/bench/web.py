"""Server render time of the pages with 100,000 referrals: amal's inbox (a member's node with
100,000 referrals in its tables), and at the hub the coordinator's dashboard (its figures over
100,000 referrals) and the network log's search (200,000 records: each referral offered and
answered).

On a network of its own (real servers and node processes, seeded like the demo). One real
referral crosses from sanad to amal first; the 100,000 are then made from it with set-based
INSERTs (its sealed envelope copied under new ids and varied states, urgencies, categories
and times over a year), followed by ANALYZE. Each page is then asked for ``REQUESTS`` times in
a row over HTTP on the loopback, with the visitor's bearer token (the pages call the node's
APIs in-process, as for a browser), after ``WARM_UP`` requests; the time is from the request
to the last byte of the HTML. ``python -m tests.bench`` runs it; ``python -m tests.bench.web``
alone too.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from deploy.demo import bring_up, credentials
from deploy.network import on_free_ports
from shared.settings import DEMO_SECRET
from tests.bench.measure import percentile

Say = Callable[[str], None]
REFERRALS = 100_000
REQUESTS = 40
WARM_UP = 3
# Organisations of the fictional network the figures spread over (codes only: 20 members).
ORGS = ("sanad", "amal", *(f"member{i:02d}" for i in range(1, 19)))
PAGES = (
    ("inbox", "amal", "focal_point", "/referrals?box=inbox"),
    ("inbox, filtered by status", "amal", "focal_point", "/referrals?box=inbox&status=accepted"),
    ("coordinator dashboard", "hub", "coordinator", "/network"),
    ("network log search", "hub", "coordinator", "/audit?log=network"),
    (
        "network log, one organisation",
        "hub",
        "coordinator",
        "/audit?log=network&org=member07&action=referral.accepted",
    ),
)


def _token(creds: dict[str, Any], node: str, role: str) -> str:
    return str(next(u["token"] for u in creds["nodes"][node]["users"] if u["role"] == role))


@asynccontextmanager
async def _nodes(say: Say) -> AsyncIterator[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="relais-bench-web-"))
    net = on_free_ports(root, ("sanad", "amal"), hub_org="secretariat", secret_key=DEMO_SECRET)
    try:
        started = time.monotonic()
        await net.start_servers()
        creds = credentials(net, await bring_up(net, {}))
        say(f"web: hub, sanad and amal nodes up in {time.monotonic() - started:.1f}s")
        yield creds
    finally:
        await net.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _first_referral(creds: dict[str, Any], limit: float) -> str:
    """One real referral, sanad to amal, until amal's inbox has it: the pattern of the rest."""
    sanad = creds["nodes"]["sanad"]["url"]
    amal = creds["nodes"]["amal"]["url"]
    async with httpx.AsyncClient(timeout=30) as client:
        sent = await client.post(
            f"{sanad}/api/v1/referrals",
            headers={"Authorization": f"Bearer {_token(creds, 'sanad', 'caseworker')}"},
            json={
                "to_org": "amal",
                "category": "primary_health",
                "urgency": "priority",
                "legal_basis": "consent",
                "consent": {},
                "payload": {"given_name": "Bench", "need_summary": "Banc d'essai des pages."},
            },
        )
        sent.raise_for_status()
        referral_id = str(sent.json()["referral_id"])
        deadline = time.monotonic() + limit
        headers = {"Authorization": f"Bearer {_token(creds, 'amal', 'focal_point')}"}
        while time.monotonic() < deadline:
            found = await client.get(f"{amal}/api/v1/referrals/{referral_id}", headers=headers)
            if found.status_code == 200:
                return referral_id
            await asyncio.sleep(0.3)
    raise TimeoutError(f"the first referral did not reach amal within {limit:.0f}s")


async def _categories(creds: dict[str, Any]) -> list[str]:
    async with httpx.AsyncClient(timeout=30) as client:
        found = await client.get(
            f"{creds['nodes']['hub']['url']}/api/v1/directory/reference/categories",
            headers={"Authorization": f"Bearer {_token(creds, 'hub', 'coordinator')}"},
        )
    found.raise_for_status()
    return [str(c["code"]) for c in found.json()]


async def fill_inbox(url: str, pattern: str, count: int) -> None:
    """``count`` referrals in amal's inbox, copies of ``pattern`` under new ids, in states,
    urgencies and times spread over the last year."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO referrals.referrals (referral_id, box, from_org, to_org, category,
                urgency, region, legal_basis, consent, consent_state, status, status_at,
                status_by, created_by, created_at, acknowledge_by, answer_by, header,
                signature, nonce, ciphertext, sealed_key, refused_reason, closed_at,
                key_destroyed_at, shredded_at, updated_at)
            SELECT gen_random_uuid(), r.box, r.from_org, r.to_org, r.category,
                   (ARRAY['emergency','priority','routine'])[1 + i % 3], r.region,
                   r.legal_basis, r.consent, r.consent_state,
                   (ARRAY['received','accepted','in_progress','completed','declined',
                          'received','accepted','completed'])[1 + i % 8],
                   t, r.status_by, r.created_by, t,
                   t + interval '2 days', t + interval '14 days',
                   r.header, r.signature, r.nonce, r.ciphertext, r.sealed_key, NULL,
                   NULL, NULL, NULL, t + (i % 50) * interval '1 hour'
            FROM referrals.referrals r,
                 generate_series(1, $2) AS i,
                 LATERAL (SELECT now() - (i * interval '315 seconds') AS t) AS moment
            WHERE r.referral_id = $1
            """,
            pattern,
            count,
            timeout=900,
        )
        await conn.execute("ANALYZE referrals.referrals", timeout=300)
    finally:
        await conn.close()


async def fill_network_log(url: str, categories: list[str], count: int) -> None:
    """At the hub: ``count`` referrals' facts (the figures) and their network log, each
    referral offered then answered (accepted, declined or still waiting)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            CREATE TEMP TABLE made AS
            SELECT gen_random_uuid() AS referral_id,
                   $2::text[] AS orgs, i,
                   now() - (i * interval '315 seconds') AS created_at,
                   ($3::text[])[1 + i % array_length($3::text[], 1)] AS category
            FROM generate_series(1, $1) AS i
            """,
            count,
            list(ORGS),
            categories,
            timeout=300,
        )
        await conn.execute(
            """
            INSERT INTO audit.referral_fact (referral_id, from_org, to_org, category, urgency,
                region, created_at, status, answered_at, completed_at, closed_at, escalated)
            SELECT referral_id, orgs[1 + i % 20], orgs[1 + (i / 20 + i % 19 + 1) % 20],
                   category, (ARRAY['emergency','priority','routine'])[1 + i % 3],
                   (ARRAY['oriental','rabat_sale_kenitra','tanger_tetouan_al_hoceima',
                          'souss_massa'])[1 + i % 4],
                   created_at,
                   (ARRAY['sent','accepted','in_progress','completed','declined'])[1 + i % 5],
                   CASE WHEN i % 5 > 0 THEN created_at + (i % 72) * interval '1 hour' END,
                   CASE WHEN i % 5 = 3 THEN created_at + (i % 30) * interval '1 day' END,
                   CASE WHEN i % 5 IN (3, 4) THEN created_at + (i % 30) * interval '1 day' END,
                   i % 10 = 0
            FROM made
            """,
            timeout=900,
        )
        await conn.execute(
            """
            INSERT INTO audit.network_event (event_id, at, action, from_org, to_org, object,
                meta)
            SELECT gen_random_uuid(), e.at, e.action, e.from_org, e.to_org,
                   'referral:' || f.referral_id, jsonb_build_object('category', f.category)
            FROM audit.referral_fact f
            CROSS JOIN LATERAL (VALUES
                (f.created_at, 'referral.offered', f.from_org, f.to_org),
                (coalesce(f.answered_at, f.created_at + interval '1 minute'),
                 CASE f.status WHEN 'declined' THEN 'referral.declined'
                               WHEN 'sent' THEN 'referral.received'
                               ELSE 'referral.accepted' END, f.to_org, f.from_org)
            ) AS e(at, action, from_org, to_org)
            WHERE f.referral_id IN (SELECT referral_id FROM made)
            ORDER BY e.at
            """,
            timeout=900,
        )
        await conn.execute("ANALYZE audit.referral_fact", timeout=300)
        await conn.execute("ANALYZE audit.network_event", timeout=300)
    finally:
        await conn.close()


async def _time_page(client: httpx.AsyncClient, url: str, token: str) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "fr"}
    timings = []
    size = 0
    for n in range(WARM_UP + REQUESTS):
        began = time.perf_counter()
        response = await client.get(url, headers=headers)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        size = len(response.content)
        if n >= WARM_UP:
            timings.append(elapsed)
    return sorted(timings), size


async def measure(creds: dict[str, Any], say: Say) -> list[dict[str, Any]]:
    results = []
    async with httpx.AsyncClient(timeout=60) as client:
        for name, node, role, path in PAGES:
            url = creds["nodes"][node]["url"] + path
            timings, size = await _time_page(client, url, _token(creds, node, role))
            row = {
                "page": name,
                "node": node,
                "path": path,
                "requests": len(timings),
                "p50_ms": round(statistics.median(timings), 1),
                "p95_ms": round(percentile(timings, 95), 1),
                "max_ms": round(timings[-1], 1),
                "html_kb": round(size / 1024, 1),
            }
            say(f"web: {name}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms")
            results.append(row)
    return results


async def run(say: Say, limit: float = 120) -> dict[str, Any]:
    """The figures, or ``{"error": ...}``: a failure is a row of the table, not a crash."""
    try:
        async with _nodes(say) as creds:
            pattern = await _first_referral(creds, limit)
            started = time.monotonic()
            await fill_inbox(creds["nodes"]["amal"]["database_url"], pattern, REFERRALS)
            inbox_s = time.monotonic() - started
            say(f"web: {REFERRALS} referrals in amal's inbox in {inbox_s:.1f}s")
            started = time.monotonic()
            await fill_network_log(
                creds["nodes"]["hub"]["database_url"], await _categories(creds), REFERRALS
            )
            hub_s = time.monotonic() - started
            say(f"web: {REFERRALS} referrals (facts and network log) at the hub in {hub_s:.1f}s")
            pages = await measure(creds, say)
        return {
            "benchmark": "web-pages",
            "referrals": REFERRALS,
            "network_log_records": 2 * REFERRALS,
            "organisations": len(ORGS),
            "load_s": {"inbox": round(inbox_s, 1), "hub": round(hub_s, 1)},
            "requests_per_page": REQUESTS,
            "warm_up": WARM_UP,
            "pages": pages,
        }
    except Exception as exc:
        return {"benchmark": "web-pages", "error": f"{type(exc).__name__}: {exc}"}


def table(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"web pages  FAILED: {result['error']}"
    lines = [
        f"web pages: server render time with {result['referrals']} referrals"
        f" ({result['network_log_records']} network log records at the hub),"
        f" {result['requests_per_page']} requests each, over HTTP on the loopback",
        f"    {'page':<32}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'HTML kB':>10}",
    ]
    for p in result["pages"]:
        lines.append(
            f"    {p['page']:<32}{p['p50_ms']:>10}{p['p95_ms']:>10}{p['max_ms']:>10}"
            f"{p['html_kb']:>10}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    began = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {line}", flush=True)

    print(table(asyncio.run(run(say))))
