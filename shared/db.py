"""PostgreSQL access: the asyncpg pool, JSON codecs, and forward-only per-service migrations.

Each service owns one schema in its node's database. Its migrations are the ``NNNN_name.sql``
files of its ``migrations/`` folder, preceded by the shared ones (outbox and processed tables),
applied in order inside one transaction each, under an advisory lock so that two processes
starting together do not race. Applied migrations are recorded in ``<schema>.schema_migrations``
with the sha256 of their file: a file changed after it was applied stops the start-up
(``MigrationChanged``, naming the file), since the database no longer matches what the code
reads. A database made before checksums were recorded gets them on its first start.

A home-made runner rather than a migration tool: the well-kept ones (Alembic, yoyo) run on
SQLAlchemy or a synchronous driver, a second way into PostgreSQL beside asyncpg, and know
nothing of one schema per service sharing files; this one is plain SQL files, one transaction
each, under an advisory lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared import outages, telemetry
from shared.text import gettext as _

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
MIGRATION_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# What handlers get: a connection of their own, or one borrowed from the pool.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


async def init_connection(conn: Connection, service: str | None = None) -> None:
    """Every connection speaks JSON as Python objects and traces its queries (a span each,
    inside the trace that ran it: ``telemetry.query_logger``)."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    conn.add_query_logger(telemetry.query_logger(service))


async def keep_session(conn: Connection) -> None:
    """What a connection given back to the pool needs beyond asyncpg's own clean-up (which
    rolls back a transaction left open): nothing. asyncpg's default would send
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` at every release, a round
    trip of four statements per borrowing, for session state no pool user leaves: locks are
    ``pg_advisory_xact_lock``, settings ``SET LOCAL``, cursors live in a transaction, and
    ``LISTEN`` has connections of its own (the relays, the clock, the live updates)."""


async def create_pool(dsn: str, *, max_size: int = 10, service: str | None = None) -> Pool:
    """A pool whose connections speak JSON as Python objects; ``service``: whose queries its
    spans are (the ``relais.service`` attribute)."""

    async def init(conn: Connection) -> None:
        await init_connection(conn, service)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=init,
        reset=keep_session,
        command_timeout=30,
    )
    assert pool is not None
    return pool


class MigrationChanged(RuntimeError):
    """An applied migration's file is not the one that was applied."""

    def __init__(self, schema: str, migration: Migration, recorded: str) -> None:
        self.path = migration.path
        super().__init__(
            _(
                "refusing to start: migration file %(path)s was changed after it was applied to"
                " schema %(schema)s (sha256 recorded %(recorded)s..., file now %(current)s...)."
                " Put the file back as it was applied (the file of the release that applied it);"
                " a change to the database goes in a new migration. See deploy/README.md,"
                " Migrations."
            )
            % {
                "path": migration.path,
                "schema": schema,
                "recorded": recorded[:12],
                "current": migration.checksum[:12],
            }
        )


@dataclass(frozen=True)
class Migration:
    name: str
    path: Path
    sql: str
    checksum: str  # sha256 of the file's bytes, hexadecimal

    @classmethod
    def read(cls, name: str, path: Path) -> Migration:
        content = path.read_bytes()
        return cls(name, path, content.decode(), hashlib.sha256(content).hexdigest())


def load_migrations(*folders: Path) -> list[Migration]:
    """The migrations of these folders, the shared ones first, each folder in file-name order."""
    migrations: list[Migration] = []
    for folder in folders:
        for path in sorted(folder.glob("*.sql")):
            if not MIGRATION_NAME.match(path.name):
                raise ValueError(f"migration {path} is not named NNNN_name.sql")
            migrations.append(Migration.read(f"{folder.parent.name}/{path.stem}", path))
    return migrations


async def migrate(pool: Pool, schema: str, folders: Sequence[Path]) -> list[str]:
    """Bring ``schema`` up to date; returns the names of the migrations applied now."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    migrations = load_migrations(SHARED_MIGRATIONS, *folders)
    applied_now: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        # One lock for every schema: CREATE SCHEMA IF NOT EXISTS itself races otherwise.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('relais-migrations'))")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # Tables made before checksums were recorded get the column here (the upgrade path).
        await conn.execute(
            f"ALTER TABLE {schema}.schema_migrations ADD COLUMN IF NOT EXISTS checksum text"
        )
        done: dict[str, str | None] = {
            r["name"]: r["checksum"]
            for r in await conn.fetch(f"SELECT name, checksum FROM {schema}.schema_migrations")
        }
        # Every applied file is checked before anything new runs; raising rolls it all back.
        unrecorded: list[Migration] = []
        for migration in migrations:
            if migration.name not in done:
                continue
            recorded = done[migration.name]
            if recorded is None:
                unrecorded.append(migration)
            elif recorded != migration.checksum:
                error = MigrationChanged(schema, migration, recorded)
                log.critical("%s", error)
                raise error
        for migration in unrecorded:
            await conn.execute(
                f"UPDATE {schema}.schema_migrations SET checksum = $2 WHERE name = $1",
                migration.name,
                migration.checksum,
            )
        if unrecorded:
            log.info(
                "schema %s: recorded the checksums of %s, applied before checksums were kept",
                schema,
                ", ".join(m.name for m in unrecorded),
            )
        for migration in migrations:
            if migration.name in done:
                continue
            await conn.execute(f"SET LOCAL search_path TO {schema}, public")
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {schema}.schema_migrations (name, checksum) VALUES ($1, $2)",
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration.name)
    if applied_now:
        log.info("schema %s: applied %s", schema, ", ".join(applied_now))
    return applied_now


async def ping(pool: Pool) -> bool:
    try:
        async with pool.acquire(timeout=2) as conn:
            return bool(await conn.fetchval("SELECT true"))
    except outages.DATABASE_OR_BROKER_DOWN:  # InterfaceError too: a connection that died
        return False


def record_to_dict(record: asyncpg.Record) -> dict[str, Any]:
    return dict(record.items())
