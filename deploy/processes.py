"""Supervised child processes: start, wait until ready, restart on crash, stop, leave none behind.

Each child runs in its own session (so a Ctrl-C reaches the launcher alone, which then stops
the children in order) and is told by the kernel to stop when the launcher dies, even by
SIGKILL (``PR_SET_PDEATHSIG``), so no orphan outlives the launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
ReadyProbe = Callable[[], Awaitable[bool]]


class StartupFailed(RuntimeError):
    """A process exited, or did not become ready in time; the message says which and where."""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    ready: ReadyProbe | None = None
    ready_timeout: float = 30.0
    restart: bool = True
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0
    user: str | None = None  # run as this system user (PostgreSQL refuses to run as root)
    cwd: Path | None = None


def _child_setup(user: str | None, death_signal: int) -> Callable[[], None]:
    entry = pwd.getpwnam(user) if user else None

    def setup() -> None:  # runs in the child between fork and exec
        if entry is not None:
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        # After setuid: a change of credentials clears the parent-death signal.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, death_signal)
        if os.getppid() == 1:  # the launcher died before prctl took effect
            os.kill(os.getpid(), death_signal)

    return setup


@dataclass
class Managed:
    """One supervised process and its restart history."""

    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    stopping: bool = False
    _watch: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    """Starts processes in order, restarts the ones that crash, stops them in reverse order."""

    def __init__(self, *, max_backoff: float = 30.0, steady_after: float = 10.0) -> None:
        self.processes: list[Managed] = []
        self.max_backoff = max_backoff
        # A process that ran this long before it died was not crash-looping: its restart waits
        # the shortest back-off again. (At 60 s, PostgreSQL killed twice in a minute by the
        # chaos suite left every node without a database for 30 s after each later crash.)
        self.steady_after = steady_after

    async def start(self, spec: ProcessSpec) -> Managed:
        managed = Managed(spec)
        await self._spawn(managed)
        self.processes.append(managed)
        await self._wait_ready(managed)
        managed._watch = asyncio.create_task(self._watch_over(managed), name=f"watch {spec.name}")
        return managed

    async def start_all(self, specs: list[ProcessSpec]) -> list[Managed]:
        """Start several processes at once and wait until every one is ready."""
        managed = [Managed(spec) for spec in specs]
        for one in managed:
            await self._spawn(one)
            self.processes.append(one)
        await asyncio.gather(*(self._wait_ready(one) for one in managed))
        for one in managed:
            one._watch = asyncio.create_task(self._watch_over(one), name=f"watch {one.spec.name}")
        return managed

    def __getitem__(self, name: str) -> Managed:
        for managed in self.processes:
            if managed.spec.name == name:
                return managed
        raise KeyError(name)

    async def _spawn(self, managed: Managed) -> None:
        spec = managed.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as logfile:
            logfile.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {spec.name}\n".encode())
            logfile.flush()
            if spec.user:
                entry = pwd.getpwnam(spec.user)
                os.chown(spec.log_path, entry.pw_uid, entry.pw_gid)
            managed.process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **spec.env},
                cwd=spec.cwd,
                start_new_session=True,
                preexec_fn=_child_setup(spec.user, int(spec.stop_signal)),
            )
        log.info("started %s (pid %s)", spec.name, managed.pid)

    async def _wait_ready(self, managed: Managed) -> None:
        spec = managed.spec
        deadline = time.monotonic() + spec.ready_timeout
        while True:
            assert managed.process is not None
            if managed.process.returncode is not None:
                raise StartupFailed(
                    f"{spec.name} exited with code {managed.process.returncode} while starting;"
                    f" see {spec.log_path}"
                )
            if spec.ready is None or await _probe(spec.ready):
                return
            if time.monotonic() > deadline:
                await self._stop(managed)
                waited = f"{spec.ready_timeout:.0f}s"
                raise StartupFailed(
                    f"{spec.name} was not ready after {waited}; see {spec.log_path}"
                )
            await asyncio.sleep(0.05)

    async def _watch_over(self, managed: Managed) -> None:
        backoff = 0.5
        while True:
            assert managed.process is not None
            started = time.monotonic()
            code = await managed.process.wait()
            if managed.stopping or not managed.spec.restart:
                return
            if time.monotonic() - started > self.steady_after:
                backoff = 0.5  # it ran well for a while: this is a new failure, not a crash loop
            managed.restarts += 1
            log.warning(
                "%s exited with code %s; restart %d in %.1fs (log: %s)",
                managed.spec.name,
                code,
                managed.restarts,
                backoff,
                managed.spec.log_path,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
            if managed.stopping:
                return
            await self._spawn(managed)

    async def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal one process as a crash would; the supervisor restarts it (for tests and chaos)."""
        managed = self[name]
        assert managed.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(managed.process.pid, sig)

    async def stop(self, name: str) -> None:
        """Stop one process for good (it is not restarted)."""
        managed = self[name]
        await self._stop(managed)
        self.processes.remove(managed)

    async def restart(self, name: str) -> None:
        """Stop one process cleanly and start it again, waiting until it is ready."""
        managed = self[name]
        await self._stop(managed)
        managed.stopping = False
        await self._spawn(managed)
        await self._wait_ready(managed)
        managed._watch = asyncio.create_task(self._watch_over(managed))

    async def stop_all(self) -> None:
        for managed in reversed(self.processes):
            await self._stop(managed)
        self.processes.clear()

    async def _stop(self, managed: Managed) -> None:
        managed.stopping = True
        if managed._watch is not None:
            managed._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await managed._watch
        process = managed.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            # The leader alone: PostgreSQL stops its own backends, in order.
            os.kill(process.pid, managed.spec.stop_signal)
        try:
            await asyncio.wait_for(process.wait(), managed.spec.stop_timeout)
        except TimeoutError:
            log.warning(
                "%s did not stop in %.0fs; killing it", managed.spec.name, managed.spec.stop_timeout
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        log.info("stopped %s", managed.spec.name)


async def _probe(ready: ReadyProbe) -> bool:
    try:
        return await asyncio.wait_for(ready(), 2)
    except Exception:
        return False
