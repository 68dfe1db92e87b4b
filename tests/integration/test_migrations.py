"""Migrations on a real PostgreSQL: an applied file that changed stops the start naming it; a
database made by the previous release (commit ae323ad) is brought up to date, its node starts
and what was written before is still read."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from deploy.network import Network
from deploy.node import SERVICES
from deploy.ports import free_ports
from deploy.processes import ProcessSpec, Supervisor
from services.auth.main import service as auth
from services.directory import store as directory_store
from shared import db
from shared.auth import store as auth_store
from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
)
from shared.service import Service

ROOT = Path(__file__).parents[2]
RELEASE = Path(__file__).parent / "release_ae323ad"  # see its README.md
ORGANISATION = OrganisationPublished(
    org_id="tadamoun",
    version=3,
    name=LocalisedText(fr="Tadamoun", ar="تضامن"),
    kind=OrganisationKind.NGO,
    status=MembershipStatus.ACTIVE,
    city="oujda",
)


def previous_release() -> ModuleType:
    """The migration runner of commit ae323ad (its ``shared/db.py``, unchanged)."""
    spec = importlib.util.spec_from_file_location("relais_ae323ad_db", RELEASE / "shared/db.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def every_service() -> list[Service]:
    return [auth, *SERVICES.values()]


# Folders that moved since the release, and where the release keeps them.
MOVED_SINCE_RELEASE = {Path("services/auth/migrations"): Path("shared/auth/migrations")}


def migrations_of(service: Service, root: Path) -> list[Path]:
    """The service's own migrations folder, under ``root`` (the repository or the release)."""
    if service.migrations is None:
        return []
    folder = service.migrations.relative_to(ROOT)
    if root == RELEASE:
        folder = MOVED_SINCE_RELEASE.get(folder, folder)
    return [root / folder]


@pytest.fixture
async def fresh_database(network: Network) -> AsyncIterator[str]:
    name = f"u_{uuid.uuid4().hex[:16]}"
    url = await network.postgres.ensure_database(name)
    yield url
    await network.postgres.drop_database(name)


async def applied(pool: db.Pool, schema: str) -> dict[str, str | None]:
    rows = await pool.fetch(f"SELECT name, checksum FROM {schema}.schema_migrations")
    return {r["name"]: r["checksum"] for r in rows}


async def applied_names(pool: db.Pool, schema: str) -> set[str]:
    return {r["name"] for r in await pool.fetch(f"SELECT name FROM {schema}.schema_migrations")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestAChangedMigration:
    async def test_is_refused_naming_its_file_and_nothing_new_is_applied(
        self, fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RELAIS_LANG", "en")  # the message is in the operator's language
        folder = tmp_path / "shelter" / "migrations"
        folder.mkdir(parents=True)
        first = folder / "0001_beds.sql"
        first.write_text("CREATE TABLE beds (id int PRIMARY KEY);\n")
        pool = await db.create_pool(fresh_database, max_size=2)
        try:
            assert "shelter/0001_beds" in await db.migrate(pool, "shelter", [folder])
            first.write_text("CREATE TABLE beds (id int PRIMARY KEY, city text);\n")
            (folder / "0002_rooms.sql").write_text("CREATE TABLE rooms (id int);\n")
            with pytest.raises(db.MigrationChanged) as refused:
                await db.migrate(pool, "shelter", [folder])
            assert str(first) in str(refused.value)
            assert "changed after it was applied" in str(refused.value)
            assert refused.value.path == first
            # The new migration was not applied on the way: all or nothing.
            assert "shelter/0002_rooms" not in await applied(pool, "shelter")
            assert await pool.fetchval("SELECT to_regclass('shelter.rooms')") is None
            # Put back as applied, it starts again, and the new one goes in.
            first.write_text("CREATE TABLE beds (id int PRIMARY KEY);\n")
            assert await db.migrate(pool, "shelter", [folder]) == ["shelter/0002_rooms"]
        finally:
            await pool.close()

    async def test_stops_the_node_with_a_message_naming_the_file(
        self, network: Network, fresh_database: str
    ) -> None:
        pool = await db.create_pool(fresh_database, max_size=2)
        try:
            for service in (auth, SERVICES["directory"]):
                await db.migrate(pool, service.name, migrations_of(service, ROOT))
            # As if services/directory/migrations/0001_init.sql had been edited since.
            await pool.execute(
                "UPDATE directory.schema_migrations SET checksum = $1 WHERE name = $2",
                "0" * 64,
                "directory/0001_init",
            )
        finally:
            await pool.close()
        (port,) = free_ports(1)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        relais = str(Path(sys.executable).parent / "relais")
        process = await asyncio.create_subprocess_exec(
            *[relais, "serve", "directory", "--port", str(port)],
            env={**clean, **hub_env(network, fresh_database), "RELAIS_LANG": "fr"},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
        output = out.decode()
        assert process.returncode == 2, output  # a refusal, not uvicorn's startup failure (3)
        assert "Traceback" not in output  # the line that matters, not buried under a stack
        refusal = [line for line in output.splitlines() if line.startswith("relais : ")]
        assert len(refusal) == 1, output
        assert refusal[0].startswith("relais : démarrage impossible : ")  # in French, as asked
        assert "services/directory/migrations/0001_init.sql" in refusal[0]
        assert "a été modifié après avoir été appliqué" in refusal[0]


class TestADatabaseOfThePreviousRelease:
    async def test_gets_its_checksums_and_new_migrations_and_keeps_its_data(
        self, network: Network, fresh_database: str, tmp_path: Path
    ) -> None:
        old = previous_release()
        pool = await db.create_pool(fresh_database, max_size=2)
        try:
            for service in every_service():
                await old.migrate(pool, service.name, migrations_of(service, RELEASE))
            assert "checksum" not in {
                r["column_name"]
                for r in await pool.fetch(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'directory' AND table_name = 'schema_migrations'"
                )
            }
            # Data the previous release wrote (its stores are the ones of today for these).
            async with pool.acquire() as conn:
                await directory_store.save_organisation(conn, ORGANISATION)
            await auth_store.add_user(pool, "khadija", "a-long-passphrase-1", "coordinator")
            before = {s.name: await applied_names(pool, s.name) for s in every_service()}

            for service in every_service():
                now = await db.migrate(pool, service.name, migrations_of(service, ROOT))
                assert "shared/0002_pruning" in now
                assert not set(now) & before[service.name]  # nothing applied twice
                recorded = await applied(pool, service.name)
                # Every migration of the previous release got the checksum of its file.
                for name in before[service.name]:
                    folder, stem = name.split("/")
                    file = next(
                        p / f"{stem}.sql"
                        for p in [db.SHARED_MIGRATIONS, *migrations_of(service, ROOT)]
                        if p.parent.name == folder
                    )
                    assert recorded[name] == sha256(file), name
            # A second start finds everything in order and applies nothing.
            for service in every_service():
                assert await db.migrate(pool, service.name, migrations_of(service, ROOT)) == []
            async with pool.acquire() as conn:
                assert await directory_store.get_organisation(conn, "tadamoun") == ORGANISATION
        finally:
            await pool.close()

    async def test_its_node_starts_and_serves_what_was_written_before(
        self, network: Network, fresh_database: str
    ) -> None:
        old = previous_release()
        pool = await db.create_pool(fresh_database, max_size=2)
        try:
            for service in every_service():
                await old.migrate(pool, service.name, migrations_of(service, RELEASE))
            async with pool.acquire() as conn:
                await directory_store.save_organisation(conn, ORGANISATION)
            await auth_store.add_user(pool, "khadija", "a-long-passphrase-1", "coordinator")
        finally:
            await pool.close()

        async with directory_node(network, fresh_database) as url:
            pool = await db.create_pool(fresh_database, max_size=2)
            try:
                token = await auth_store.issue_access_token(pool, "khadija")
                recorded = await applied(pool, "directory")
            finally:
                await pool.close()
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                response = await client.get(
                    "/api/v1/directory/organisations/tadamoun",
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert response.status_code == 200, response.text
            assert OrganisationPublished.model_validate(response.json()) == ORGANISATION
        assert None not in recorded.values()
        assert "shared/0002_pruning" in recorded


@contextlib.asynccontextmanager
async def directory_node(network: Network, database_url: str) -> AsyncIterator[str]:
    """``relais serve directory`` on the hub's broker and this database, once ready."""
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200

    supervisor = Supervisor()
    spec = ProcessSpec(
        "upgraded-directory",
        [str(Path(sys.executable).parent / "relais"), "serve", "directory", "--port", str(port)],
        network.root / "logs" / f"upgraded-directory-{port}.log",
        env=hub_env(network, database_url),
        ready=ready,
        ready_timeout=60,
    )
    await supervisor.start(spec)
    try:
        yield url
    finally:
        await supervisor.stop_all()


def hub_env(network: Network, database_url: str) -> dict[str, str]:
    hub = network.hub
    return {
        "RELAIS_NODE_ID": hub.node_id,
        "RELAIS_ORG": hub.org,
        "RELAIS_ROLE": "secretariat",
        "RELAIS_NATS_URL": hub.nats_url,
        "RELAIS_DATABASE_URL": database_url,
        "RELAIS_SECRET_KEY": "a-secret-of-this-test-only-0123456789",
    }
