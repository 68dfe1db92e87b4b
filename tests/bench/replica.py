"""Replica catch-up: how fast a member's directory applies the hub's broadcasts after an outage.

On the federation's PostgreSQL, amal's directory gets a database of its own. While nothing
consumes amal's ``INBOX`` (the outage), the hub publishes ``events`` ``OrganisationPublished``
broadcasts: ``ORGANISATIONS`` organisations, each published again with a higher version every
``ORGANISATIONS`` events, each with one service. Once all of them wait in amal's ``INBOX``, the
directory's real consumer starts (``services.directory.consumer.subscriptions``, so the real
``replicate_organisation``: one transaction per event with its ``processed`` row) and the clock
runs until the replica holds the last version of every organisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from services.directory import consumer
from shared import db
from shared.bus import Bus
from shared.contracts.directory import OrganisationPublished
from shared.events import BROADCAST, make_event, registry
from shared.federation import INBOX
from shared.service import ServiceContext
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings
from tests.bench.measure import ScenarioFailed
from tests.bench.topology import HUB_ORG, Federation

Say = Callable[[str], None]
MEMBER = "amal"
DATABASE = "bench_amal_directory"
MIGRATIONS = Path(consumer.__file__).parent / "migrations"
ORGANISATIONS = 500
PREFIX = "bench_"
LIKE_OURS = PREFIX.replace("_", r"\_") + "%"  # LIKE's "_" matches any character
REPLICA = "directory.replica"  # the replica handler's consumer name in ``processed``
SUBJECT = registry.for_payload(OrganisationPublished).subject(sender=HUB_ORG, recipient=BROADCAST)
SOURCE = f"relais://{HUB_ORG}/bench"
IN_FLIGHT = 64  # the hub's publishes awaiting their ack at once
POLL = 0.02


@dataclass
class Progress:
    """How far the scenario got, for the progress lines and for a failure's row."""

    events: int
    stage: str = "not started"
    published: int = 0
    in_inbox: int = 0
    applied: int = 0

    def __str__(self) -> str:
        return (
            f"{self.stage}: {self.published}/{self.events} published,"
            f" {self.in_inbox} in amal's INBOX, {self.applied} applied"
        )


@dataclass(frozen=True)
class CatchUp:
    """The scenario's results, as printed and as written to the JSON file."""

    events: int
    organisations: int
    publish_s: float | None = None  # the hub's publishes, all acknowledged
    backlog_s: float | None = None  # first publish to the last event in amal's INBOX
    catch_up_s: float | None = None  # consumer start to the last version applied
    events_per_s: float | None = None  # events / catch_up_s
    service_rows: int | None = None
    inbox_purged: int = 0  # earlier scenarios' probes removed so the consumer sees only these
    error: str | None = None


def expected_versions(events: int) -> dict[str, int]:
    """The last version of each organisation: event ``i`` is version ``i // ORGANISATIONS + 1``
    of organisation ``i % ORGANISATIONS``."""
    return {
        org_id(index): index // ORGANISATIONS + 1
        for index in range(max(0, events - ORGANISATIONS), events)
    }


def org_id(index: int) -> str:
    return f"{PREFIX}{index % ORGANISATIONS}"


def record(index: int) -> OrganisationPublished:
    version = index // ORGANISATIONS + 1
    return OrganisationPublished.model_validate(
        {
            "org_id": org_id(index),
            "version": version,
            "name": {"fr": f"Association {index % ORGANISATIONS} (v{version})"},
            "kind": "ngo",
            "status": "active",
            "city": "rabat",
            "services": [
                {
                    "service_id": "legal",
                    "category": "legal_aid",
                    "description": {"fr": f"Aide juridique, version {version}"},
                    "languages": ["fra", "ary"],
                    "cities": ["rabat"],
                    "capacity": "open" if version % 2 else "waitlist",
                }
            ],
        }
    )


async def catch_up(fed: Federation, progress: Progress, say: Say) -> CatchUp:
    """Run the scenario; the caller bounds how long it may take (cancelling cleans up)."""
    events = progress.events
    plan = fed.plan(MEMBER)
    url = await fed.net.postgres.ensure_database(DATABASE)
    pool = await db.create_pool(url, max_size=4)
    # amal's directory gets a connection of its own, closed at the end: it stops consuming.
    bus = await Bus.connect(plan.nats_url, org=MEMBER, name="bench-amal-directory")
    try:
        await db.migrate(pool, "directory", [MIGRATIONS])
        settings = NodeSettings(
            node_id=MEMBER,
            org=MEMBER,
            role=NodeRole.MEMBER,
            hub_org=HUB_ORG,
            nats_url=plan.nats_url,
            database_url=url,
            secret_key=DEMO_SECRET,
            demo=True,
        )
        ctx = ServiceContext(name="directory", settings=settings, pool=pool, bus=bus)
        # The directory's consumer starts at the stream's first message: without the earlier
        # scenarios' probes (it would answer each), it sees the broadcasts only.
        purged = await _purge(bus)
        before = (await bus.js.stream_info(INBOX)).state.last_seq

        progress.stage = "outage"
        started = time.monotonic()
        await _publish(fed.buses[HUB_ORG], progress)
        publish_s = time.monotonic() - started
        say(f"replica: the hub published {events} broadcasts in {publish_s:.2f}s")
        while progress.in_inbox < events:  # polling the server: nothing here to wait on
            await asyncio.sleep(POLL)
            progress.in_inbox = (await bus.js.stream_info(INBOX)).state.last_seq - before
        backlog_s = time.monotonic() - started
        say(f"replica: all {events} waiting in amal's INBOX {backlog_s:.2f}s after the first")

        progress.stage = "catching up"
        started = time.monotonic()
        for subscription in consumer.subscriptions(ctx):
            await bus.subscribe(subscription)
        catch_up_s = await _applied(pool, progress, say, started)
        say(f"replica: caught up in {catch_up_s:.2f}s")
        return CatchUp(
            events,
            len(expected_versions(events)),
            publish_s=round(publish_s, 3),
            backlog_s=round(backlog_s, 3),
            catch_up_s=round(catch_up_s, 3),
            events_per_s=round(events / catch_up_s, 1),
            service_rows=await _check(pool, events),
            inbox_purged=purged,
        )
    finally:
        bus.nc.options["drain_timeout"] = 1  # as scenarios._close: nothing is in flight
        await bus.close()
        await pool.close()


async def _purge(bus: Bus) -> int:
    state = (await bus.js.stream_info(INBOX)).state
    if state.messages:
        await bus.js.purge_stream(INBOX)
    return int(state.messages)


async def _publish(hub: Bus, progress: Progress) -> None:
    """Every broadcast, in order, at most ``IN_FLIGHT`` awaiting their ack: an organisation's
    versions are ``ORGANISATIONS`` events apart, so they are never in flight together."""
    for start in range(0, progress.events, IN_FLIGHT):
        batch = range(start, min(start + IN_FLIGHT, progress.events))
        await asyncio.gather(*(_broadcast(hub, index) for index in batch))
        progress.published = batch.stop


async def _broadcast(hub: Bus, index: int) -> None:
    published = record(index)
    event = make_event(published, source=SOURCE, subject=published.org_id)
    await hub.publish(SUBJECT, event)


async def _applied(pool: db.Pool, progress: Progress, say: Say, started: float) -> float:
    """Seconds from ``started`` until every event has its ``processed`` row (written in the
    handler's transaction, with the record), saying how far it got each second."""
    said = started
    while True:
        progress.applied = int(
            await pool.fetchval(
                "SELECT count(*) FROM directory.processed WHERE consumer = $1", REPLICA
            )
        )
        now = time.monotonic()
        if progress.applied >= progress.events:
            return now - started
        if now - said >= 1:
            said = now
            say(f"replica: {progress.applied}/{progress.events} applied")
        await asyncio.sleep(POLL)


async def _check(pool: db.Pool, events: int) -> int:
    """The replica holds the last version of every organisation and its service; returns how
    many service rows it has."""
    rows = await pool.fetch(
        "SELECT org_id, version FROM directory.organisation WHERE org_id LIKE $1",
        LIKE_OURS,
    )
    held = {row["org_id"]: row["version"] for row in rows}
    wrong = {
        org: (held.get(org), version)
        for org, version in expected_versions(events).items()
        if held.get(org) != version
    }
    if wrong or len(held) != len(expected_versions(events)):
        sample = ", ".join(f"{org} holds {h} not {w}" for org, (h, w) in list(wrong.items())[:3])
        raise ScenarioFailed(f"the replica is wrong: {len(wrong)} organisations ({sample})")
    services = int(
        await pool.fetchval(
            "SELECT count(*) FROM directory.service WHERE org_id LIKE $1",
            LIKE_OURS,
        )
    )
    if services != len(held):
        raise ScenarioFailed(f"the replica has {services} service rows, not {len(held)}")
    return services


async def run(fed: Federation, events: int, limit: float, say: Say) -> CatchUp:
    """The scenario within ``limit`` seconds; a failure is a row of the table, not a crash."""
    progress = Progress(events)
    organisations = len(expected_versions(events))
    try:
        async with asyncio.timeout(limit) as within:
            return await catch_up(fed, progress, say)
    except TimeoutError:
        if not within.expired():
            raise
        return CatchUp(events, organisations, error=f"not done within {limit:.0f}s ({progress})")
    except ScenarioFailed as exc:
        return CatchUp(events, organisations, error=str(exc))


def as_json(result: CatchUp) -> dict[str, Any]:
    return {
        "scenario": "replica catch-up",
        "path": f"hub broadcasts → federation → {MEMBER}'s INBOX (nothing consuming), then the"
        " directory's consumer (replicate_organisation) → PostgreSQL",
        "subject": SUBJECT,
        "consumer": f"{INBOX}/directory",
        **asdict(result),
    }
