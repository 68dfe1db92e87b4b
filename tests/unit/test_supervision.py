"""The supervisor of background work: a task that fails is restarted, logged, counted and
reported by name while it is down; a task that keeps failing is reported as failing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from shared.supervision import Policy, Supervisor, TaskState
from tests.waiting import eventually

QUICK = Policy(first_delay=0.01, max_delay=0.05, healthy_after=10, too_many=3, window=60)


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check, within=within, what="the supervised task's state")


def restarts_of(name: str) -> float:
    value = REGISTRY.get_sample_value("relais_task_restarts_total", {"task": name})
    return value or 0.0


class TestRestartingFailedWork:
    async def test_a_task_that_raises_is_restarted_and_does_its_work_afterwards(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        supervisor = Supervisor(QUICK)
        attempts: list[int] = []
        done = asyncio.Event()

        async def relay() -> None:
            attempts.append(1)
            if len(attempts) < 3:
                raise ConnectionResetError("the underlying connection is closed")
            done.set()
            await asyncio.Event().wait()

        before = restarts_of("test: relay")
        with caplog.at_level(logging.ERROR, logger="shared.supervision"):
            supervisor.start("test: relay", relay)
            await asyncio.wait_for(done.wait(), 2)
        try:
            assert len(attempts) == 3
            assert restarts_of("test: relay") == before + 2
            assert supervisor.tasks["test: relay"].state is TaskState.RUNNING
            crashes = [r for r in caplog.records if "test: relay" in r.getMessage()]
            assert len(crashes) == 2
            assert "the underlying connection is closed" in crashes[0].getMessage()
            assert crashes[0].exc_info is not None  # the traceback is in the log
        finally:
            await supervisor.stop()

    async def test_a_task_waiting_to_restart_makes_the_node_not_ready_naming_it(self) -> None:
        supervisor = Supervisor(Policy(first_delay=30, max_delay=30))
        failed = asyncio.Event()

        async def clock() -> None:
            failed.set()
            raise RuntimeError("boom")

        async def worker() -> None:
            await asyncio.Event().wait()

        supervisor.start("referrals: deadline clock", clock)
        supervisor.start("notifications: delivery worker", worker)
        await failed.wait()
        await until(
            lambda: supervisor.tasks["referrals: deadline clock"].state.value == "restarting"
        )
        try:
            assert supervisor.checks() == {
                "task:referrals: deadline clock": False,
                "task:notifications: delivery worker": True,
            }
            assert supervisor.problems() == {"referrals: deadline clock": "RuntimeError: boom"}
            up = REGISTRY.get_sample_value("relais_task_up", {"task": "referrals: deadline clock"})
            assert up == 0
        finally:
            await supervisor.stop()

    async def test_a_task_that_keeps_failing_stays_reported_while_it_runs_again(self) -> None:
        supervisor = Supervisor(QUICK)
        attempts: list[int] = []

        async def flaky() -> None:
            attempts.append(1)
            if len(attempts) <= 3:
                raise OSError("database restarting")
            await asyncio.Event().wait()

        supervisor.start("test: flaky", flaky)
        await until(lambda: len(attempts) == 4)
        try:
            assert supervisor.tasks["test: flaky"].state is TaskState.RUNNING
            assert supervisor.checks() == {"task:test: flaky": False}  # 3 restarts in the window
        finally:
            await supervisor.stop()

    async def test_a_task_that_finishes_its_job_is_not_restarted(self) -> None:
        supervisor = Supervisor(QUICK)
        runs: list[int] = []

        async def learn_labels() -> None:
            runs.append(1)

        supervisor.start("test: labels", learn_labels)
        await until(lambda: supervisor.tasks["test: labels"].state is TaskState.DONE)
        await asyncio.sleep(0.05)
        assert runs == [1]
        assert supervisor.checks() == {"task:test: labels": True}
        await supervisor.stop()


def test_back_off_doubles_up_to_its_ceiling() -> None:
    policy = Policy(first_delay=1, max_delay=8)
    delays = [policy.delay(n) for n in (1, 2, 3, 4, 5, 6)]
    for delay, base in zip(delays, (1, 2, 4, 8, 8, 8), strict=True):
        assert 0.8 * base <= delay <= 1.2 * base


async def test_stopping_cancels_every_task_and_forgets_them() -> None:
    supervisor = Supervisor(QUICK)
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    supervisor.start("test: forever", forever)
    await asyncio.sleep(0)
    await supervisor.stop()
    assert cancelled.is_set()
    assert supervisor.checks() == {}
