"""The launcher: real servers start and become ready, a crash is restarted, a stop leaves no
process behind, even when the launcher itself is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from deploy import nats_server
from deploy.nats_config import NatsServerSpec
from deploy.ports import free_ports
from deploy.processes import ProcessSpec, StartupFailed, Supervisor
from tests.waiting import eventually


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(max_backoff=1)
    yield supervisor
    await supervisor.stop_all()


def nats_spec(root: Path) -> NatsServerSpec:
    client, monitor, leaf = free_ports(3)
    return NatsServerSpec("solo", "hub", client, monitor, root / "js", leaf_port=leaf)


async def healthy(spec: NatsServerSpec) -> bool:
    async with httpx.AsyncClient(timeout=1) as client:
        try:
            return (
                await client.get(f"http://127.0.0.1:{spec.monitor_port}/healthz")
            ).status_code == 200
        except httpx.HTTPError:
            return False


async def test_a_server_is_ready_when_start_returns(supervisor: Supervisor, tmp_path: Path) -> None:
    spec = nats_spec(tmp_path)
    await supervisor.start(nats_server.process(spec, config_dir=tmp_path, log_dir=tmp_path))
    assert await healthy(spec)


async def test_a_crashed_process_is_restarted_and_the_restart_is_logged(
    supervisor: Supervisor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = nats_spec(tmp_path)
    managed = await supervisor.start(
        nats_server.process(spec, config_dir=tmp_path, log_dir=tmp_path)
    )
    first_pid = managed.pid
    await supervisor.kill("nats-solo")

    async def restarted() -> bool:
        return managed.restarts == 1 and await healthy(spec)

    await eventually(restarted, within=10, what="the killed server restarted and healthy")
    assert managed.pid != first_pid
    assert "restart 1" in caplog.text


async def test_stopping_leaves_no_process_behind(supervisor: Supervisor, tmp_path: Path) -> None:
    spec = nats_spec(tmp_path)
    managed = await supervisor.start(
        nats_server.process(spec, config_dir=tmp_path, log_dir=tmp_path)
    )
    pid = managed.pid
    assert pid is not None and psutil.pid_exists(pid)
    await supervisor.stop_all()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not await healthy(spec)


async def test_a_process_that_exits_while_starting_is_reported_with_its_log(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    spec = ProcessSpec(
        "doomed",
        [sys.executable, "-c", "raise SystemExit(3)"],
        tmp_path / "doomed.log",
        ready=lambda: _never(),
    )
    with pytest.raises(StartupFailed, match=r"doomed exited with code 3.*doomed\.log"):
        await supervisor.start(spec)


async def _never() -> bool:
    return False


def test_children_die_with_a_launcher_killed_by_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    launcher = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from deploy.processes import ProcessSpec, Supervisor

        async def main():
            s = Supervisor()
            log = Path({str(tmp_path / "s.log")!r})
            m = await s.start(ProcessSpec("sleeper", ["sleep", "300"], log))
            Path({str(pidfile)!r}).write_text(str(m.pid))
            await asyncio.sleep(300)

        asyncio.run(main())
        """
    )
    process = subprocess.Popen([sys.executable, "-c", launcher], cwd=Path(__file__).parents[2])
    try:
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text():
                break
            _sleep(0.05)
        child = int(pidfile.read_text())
        assert psutil.pid_exists(child)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(5)
        for _ in range(100):
            if not _alive(child):
                break
            _sleep(0.05)
        assert not _alive(child)
    finally:
        if process.poll() is None:
            process.kill()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _sleep(seconds: float) -> None:
    time.sleep(seconds)
