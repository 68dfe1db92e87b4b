"""``relais backup`` and ``relais restore`` against the launcher's real PostgreSQL: what goes in
the archive, what comes back, and every refusal leaving the target untouched."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from deploy.backup import MANIFEST, granted_roles, pg_bin
from deploy.cli import app
from deploy.network import Network
from shared.crypto import NodeKeys
from shared.membership.joining import load_or_create_nkey

NODE = "amal"


async def relais(*args: str | Path) -> Result:
    # The CLI runs its own event loop: a thread of its own, away from the test's loop.
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, app, [str(a) for a in args], env={"RELAIS_LANG": "en"}
    )


@pytest.fixture
async def empty_database(network: Network) -> AsyncIterator[str]:
    name = f"r_{uuid.uuid4().hex[:16]}"
    url = await network.postgres.ensure_database(name)
    yield url
    await network.postgres.drop_database(name)


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A node's key folder as ``relais node init`` and ``join`` leave it."""
    folder = tmp_path / "keys"
    NodeKeys.load_or_create(folder)
    load_or_create_nkey(folder)
    (folder / "credentials.json").write_text('{"org_id": "amal"}')
    (folder / "node.env").write_text("RELAIS_NODE_ID=amal\n")
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def contents(folder: Path) -> dict[str, bytes]:
    """The files of a folder, by name; empty when there is no folder."""
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


async def rows(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def audited(url: str) -> list[str]:
    found = await rows(url, "SELECT event FROM auth.outbox ORDER BY seq")
    return [json.loads(r["event"])["data"]["action"] for r in found]


async def take(database_url: str, key_dir: Path, target: Path, *more: str | Path) -> Result:
    return await relais(
        "backup", target, "--database-url", database_url, "--node-id", NODE,
        "--key-dir", key_dir, *more,
    )  # fmt: skip


async def put_back(archive: Path, database_url: str, key_dir: Path, *more: str | Path) -> Result:
    return await relais(
        "restore", archive, "--database-url", database_url, "--node-id", NODE,
        "--key-dir", key_dir, *more,
    )  # fmt: skip


@pytest.fixture
async def archive(database_url: str, key_dir: Path, tmp_path: Path) -> Path:
    conn = await asyncpg.connect(database_url)
    try:  # something of the node's own to find again
        await conn.execute(
            "INSERT INTO auth.users (username, display_name, role, password_hash, language)"
            " VALUES ('amina', 'Amina', 'focal_point', '$argon2id$x', 'fr')"
        )
    finally:
        await conn.close()
    settings = tmp_path / "etc" / "nats.env"
    settings.parent.mkdir()
    settings.write_text("NATS_PASSWORD=nats0123\n")
    result = await take(database_url, key_dir, tmp_path / "backups", "--include", settings)
    assert result.exit_code == 0, result.output
    (made,) = (tmp_path / "backups").iterdir()
    return made


async def test_a_restored_node_does_not_reopen_the_sessions_open_at_backup_time(
    database_url: str, key_dir: Path, empty_database: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:  # amina is logged in when the backup is taken; an earlier session of hers had ended
        await conn.execute(
            "INSERT INTO auth.users (username, display_name, role, password_hash, language)"
            " VALUES ('amina', 'Amina', 'focal_point', '$argon2id$x', 'fr')"
        )
        await conn.execute(
            "INSERT INTO auth.sessions (hash, username, expires_at, ended_at, ended_why) VALUES"
            " (sha256('open'), 'amina', now() + interval '12 hours', NULL, NULL),"
            " (sha256('old'), 'amina', now() + interval '1 hour', now(), 'logout')"
        )
    finally:
        await conn.close()
    result = await take(database_url, key_dir, tmp_path / "backups")
    assert result.exit_code == 0, result.output
    (archive,) = (tmp_path / "backups").iterdir()
    restored = await put_back(archive, empty_database, tmp_path / "fresh" / "keys")
    assert restored.exit_code == 0, restored.output
    sessions = await rows(
        empty_database, "SELECT hash = sha256('open') AS was_open, ended_why FROM auth.sessions"
    )
    assert sorted((r["was_open"], r["ended_why"]) for r in sessions) == [
        (False, "logout"),  # as it was
        (True, "admin"),  # open at backup time: ended by the restore
    ]
    # the node it was taken from keeps its session: only the restored copy ends it
    left = await rows(
        database_url, "SELECT ended_at FROM auth.sessions WHERE hash = sha256('open')"
    )
    assert [r["ended_at"] for r in left] == [None]
    record = await rows(
        empty_database,
        "SELECT event FROM auth.outbox ORDER BY seq DESC LIMIT 1",
    )
    data = json.loads(record[0]["event"])["data"]
    assert data["action"] == "node.restored"


async def test_the_archive_is_private_and_holds_the_database_keys_and_settings(
    archive: Path, database_url: str, key_dir: Path
) -> None:
    assert mode(archive) == 0o600  # the node's private keys are in it
    assert mode(archive.parent) == 0o700  # the folder it made for it
    assert archive.name.startswith(f"relais-{NODE}-") and archive.suffix == ".tar"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    assert {MANIFEST, "database.dump", "settings/nats.env", "keys/credentials.json"} <= names
    assert {f"keys/{name}" for name in contents(key_dir)} <= names
    assert manifest["format"] == "relais-backup" and manifest["node_id"] == NODE
    assert "not included" in manifest["jetstream"]
    assert (await audited(database_url))[-1] == "node.backup"


async def test_a_restore_into_a_fresh_database_and_folder_brings_everything_back(
    archive: Path, empty_database: str, key_dir: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh" / "keys"
    result = await put_back(archive, empty_database, fresh)
    assert result.exit_code == 0, result.output
    assert "amal restored from its backup of" in result.output
    users = await rows(empty_database, "SELECT username FROM auth.users")
    assert [u["username"] for u in users] == ["amina"]
    restored = contents(fresh)
    assert {name: restored[name] for name in contents(key_dir)} == contents(key_dir)
    assert all(mode(fresh / name) == 0o600 for name in restored)
    assert (fresh / "nats.env").read_text() == "NATS_PASSWORD=nats0123\n"
    # Both actions are on the restored node's chain-to-be: the backup's record was in the dump.
    assert (await audited(empty_database))[-2:] == ["node.backup", "node.restored"]


async def refused(result: Result, message: str, database_url: str, keys: Path) -> None:
    assert result.exit_code != 0
    assert message in result.output, result.output
    tables = await rows(
        database_url,
        "SELECT 1 FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    assert not tables, "half restored"
    assert not contents(keys)


async def test_a_file_that_is_not_a_backup_is_refused(empty_database: str, tmp_path: Path) -> None:
    other = tmp_path / "photo.tar"
    with tarfile.open(other, "w") as tar:
        info = tarfile.TarInfo("photo.jpg")
        tar.addfile(info, io.BytesIO(b""))
    keys = tmp_path / "new-keys"
    for path in (other, Path(__file__)):
        result = await put_back(path, empty_database, keys)
        await refused(result, "this file is not a Relais backup", empty_database, keys)


async def test_a_damaged_archive_is_refused(
    archive: Path, empty_database: str, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w") as target:
        for info in source.getmembers():
            data = source.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "database.dump":
                data = data[:-10] + b"0123456789"
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    keys = tmp_path / "new-keys"
    result = await put_back(damaged, empty_database, keys)
    await refused(result, "database.dump does not match its checksum", empty_database, keys)


async def test_a_backup_of_another_node_is_refused(
    archive: Path, empty_database: str, tmp_path: Path
) -> None:
    keys = tmp_path / "new-keys"
    result = await relais(
        "restore", archive, "--database-url", empty_database, "--node-id", "sanad",
        "--key-dir", keys,
    )  # fmt: skip
    await refused(
        result, "this backup is of the node amal, not of this node (sanad)", empty_database, keys
    )


async def test_a_database_in_use_or_not_empty_is_refused(
    archive: Path, empty_database: str, database_url: str, tmp_path: Path
) -> None:
    keys = tmp_path / "new-keys"
    node = await asyncpg.connect(empty_database)  # as the running node's pool would
    try:
        result = await put_back(archive, empty_database, keys)
        await refused(result, "the node is running", empty_database, keys)
    finally:
        await node.close()
    result = await put_back(archive, database_url, keys)  # the node's own, full database
    assert result.exit_code != 0
    assert "the database already holds data" in result.output
    assert not keys.exists()


async def test_another_nodes_key_folder_is_not_overwritten(
    archive: Path, empty_database: str, tmp_path: Path
) -> None:
    other = tmp_path / "other-keys"
    NodeKeys.load_or_create(other)
    before = contents(other)
    result = await put_back(archive, empty_database, other)
    assert result.exit_code != 0
    assert "holds another key than the backup's" in result.output
    assert contents(other) == before


async def test_a_non_empty_jetstream_store_is_refused(
    archive: Path, empty_database: str, tmp_path: Path
) -> None:
    store = tmp_path / "jetstream"
    (store / "jetstream").mkdir(parents=True)
    keys = tmp_path / "new-keys"
    result = await put_back(archive, empty_database, keys, "--jetstream-dir", store)
    await refused(result, "is not empty", empty_database, keys)


async def test_a_backup_never_overwrites_a_file(
    database_url: str, key_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "kept.tar"
    target.write_text("an older backup")
    result = await take(database_url, key_dir, target)
    assert result.exit_code != 0
    assert "exists already" in result.output
    assert target.read_text() == "an older backup"


def schema_of(archive: Path, scratch: Path) -> str:
    with tarfile.open(archive) as tar:
        (scratch / "d.dump").write_bytes(tar.extractfile("database.dump").read())  # type: ignore[union-attr]
    return subprocess.run(
        [str(pg_bin() / "pg_restore"), "--schema-only", "-f", "-", str(scratch / "d.dump")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


async def test_the_roles_the_dump_grants_to_are_found_to_be_made_on_a_new_server(
    archive: Path, tmp_path: Path
) -> None:
    """pg_dump leaves the server's roles out; restore makes the ones the grants name."""
    assert granted_roles(schema_of(archive, tmp_path)) == {"relais_audit_writer"}
