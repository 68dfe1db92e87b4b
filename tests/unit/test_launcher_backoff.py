"""The launcher's restart back-off: doubling while a process keeps dying at once (a crash
loop), back to the shortest once it had run steadily before it died (a new failure; the chaos
suite kills PostgreSQL every minute or so, and it must not stay down 30 s each time)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from deploy.processes import ProcessSpec, Supervisor
from tests.waiting import eventually


async def delays_of(lives_s: float, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The first three restart delays the supervisor logs for a process living ``lives_s``."""
    supervisor = Supervisor(max_backoff=4, steady_after=0.5)
    spec = ProcessSpec(
        name="short-lived",
        argv=["sh", "-c", f"sleep {lives_s}; exit 3"],  # a shell starts in milliseconds
        log_path=tmp_path / "short-lived.log",
    )
    caplog.set_level(logging.WARNING, logger="deploy.processes")
    await supervisor.start(spec)

    async def three() -> bool:
        return len(re.findall(r"restart \d+ in", caplog.text)) >= 3

    try:
        await eventually(three, within=30, what="three restarts")
    finally:
        await supervisor.stop_all()
    return re.findall(r"restart \d+ in ([\d.]+)s", caplog.text)[:3]


async def test_a_crash_loop_backs_off_doubling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert await delays_of(0, tmp_path, caplog) == ["0.5", "1.0", "2.0"]


async def test_a_process_that_ran_steadily_restarts_after_the_shortest_wait_each_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert await delays_of(1.0, tmp_path, caplog) == ["0.5", "0.5", "0.5"]
