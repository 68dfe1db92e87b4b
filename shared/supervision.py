"""Supervision of a node's background work: nothing that runs behind the API dies in silence.

A node does much of its work in long-running tasks (outbox relays, event consumers, the
notifications worker, clocks, watchers). A task that raised used to end with no log line while
the node still answered ``/readyz`` 200, so a node could stop sending after a database crash and
nobody knew. Each owner of such work (a service's context, the bus) starts it through a
``Supervisor``, which:

- restarts a task that raised, after a back-off that doubles up to a ceiling (with jitter, so
  that the tasks of a node do not all knock on a returning database at once) and resets once
  the task has run well for a while;
- logs every crash with its cause, and counts restarts in ``relais_task_restarts_total``;
- says which tasks are down (waiting to restart) or failing (restarted too often lately), which
  ``/readyz`` reports by name; ``relais_task_up`` is 0 for them.

A task that returns has finished its job (a one-off start-up step) and is not restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

RESTARTS = Counter(
    "relais_task_restarts_total",
    "Background tasks restarted after they failed, by task",
    ["task"],
)
UP = Gauge(
    "relais_task_up",
    "1 while a background task runs (or has finished its job), 0 while it is down or failing",
    ["task"],
)

Work = Callable[[], Coroutine[Any, Any, None]]


class TaskState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # it failed; waiting out its back-off
    DONE = "done"  # it returned: a job that was meant to end


@dataclass(frozen=True)
class Policy:
    """How a supervisor restarts: back-off bounds, and what counts as failing too often."""

    first_delay: float = 0.5
    max_delay: float = 30.0
    healthy_after: float = 60.0  # a task that ran this long without failing starts afresh
    too_many: int = 5  # restarts within ``window`` seconds that make a task "failing"
    window: float = 300.0

    def delay(self, failures: int) -> float:
        """The wait before restart number ``failures`` (1, 2, ...), with ±20 % jitter."""
        base = min(self.first_delay * 2 ** (failures - 1), self.max_delay)
        return float(base * random.uniform(0.8, 1.2))


@dataclass
class Supervised:
    """One task under supervision, as readiness and operators see it."""

    name: str
    state: TaskState = TaskState.RUNNING
    restarts: int = 0
    last_error: str | None = None
    recent: deque[float] = field(default_factory=deque)  # monotonic times of recent failures

    def failing(self, policy: Policy, now: float) -> bool:
        while self.recent and now - self.recent[0] > policy.window:
            self.recent.popleft()
        return len(self.recent) >= policy.too_many

    def healthy(self, policy: Policy, now: float) -> bool:
        return self.state is not TaskState.RESTARTING and not self.failing(policy, now)


@dataclass
class Supervisor:
    """Runs named tasks for as long as their owner runs, restarting those that fail."""

    policy: Policy = field(default_factory=Policy)
    tasks: dict[str, Supervised] = field(default_factory=dict)
    _running: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start(self, name: str, work: Work) -> None:
        """Run ``work()`` under supervision; ``work`` makes a fresh coroutine at each start."""
        if name in self._running:
            raise ValueError(f"a task named {name!r} is already supervised")
        self.tasks[name] = Supervised(name)
        UP.labels(name).set(1)
        RESTARTS.labels(name)  # at 0 from the start: an alert on its increase sees the first one
        self._running[name] = asyncio.create_task(self._keep(name, work), name=name)

    async def _keep(self, name: str, work: Work) -> None:
        task = self.tasks[name]
        failures = 0
        while True:
            started = time.monotonic()
            task.state = TaskState.RUNNING
            UP.labels(name).set(0 if task.failing(self.policy, started) else 1)
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = time.monotonic()
                failures = 1 if now - started >= self.policy.healthy_after else failures + 1
                task.restarts += 1
                task.recent.append(now)
                task.last_error = f"{type(exc).__name__}: {exc}"
                task.state = TaskState.RESTARTING
                UP.labels(name).set(0)
                RESTARTS.labels(name).inc()
                delay = self.policy.delay(failures)
                log.error(
                    "background task %r failed (%s); restarting in %.1fs",
                    name,
                    task.last_error,
                    delay,
                    exc_info=exc,
                )
                await asyncio.sleep(delay)
                continue
            task.state = TaskState.DONE
            UP.labels(name).set(1)
            return

    def problems(self) -> dict[str, str]:
        """The tasks that are down or failing too often, each with what went wrong."""
        now = time.monotonic()
        return {
            t.name: t.last_error or t.state.value
            for t in self.tasks.values()
            if not t.healthy(self.policy, now)
        }

    def checks(self) -> dict[str, bool]:
        """``task:<name>``: whether it is healthy, for ``/readyz``."""
        now = time.monotonic()
        return {f"task:{t.name}": t.healthy(self.policy, now) for t in self.tasks.values()}

    async def stop(self, *, grace: float = 5.0) -> None:
        """Cancel every task and wait for them, a bounded time: shutdown never hangs."""
        running = list(self._running.values())
        for task in running:
            task.cancel()
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                log.warning("%s did not stop within %.0fs; abandoning it", task.get_name(), grace)
        for task in running:
            if task.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    task.result()
        for name in self._running:
            with contextlib.suppress(KeyError):  # a label the scrape no longer needs
                UP.remove(name)
        self._running.clear()
        self.tasks.clear()
