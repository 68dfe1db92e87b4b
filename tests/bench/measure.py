"""What a scenario measures: when each event was written and arrived, and the figures from it.

Latency of one event is its arrival time minus its envelope's ``time`` (set when the event was
made, just before it was written); both clocks are this process's wall clock. Throughput is the
events over the span from the first write to the last arrival.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


class ScenarioFailed(RuntimeError):
    """The events could not all be sent; the message says why."""


@dataclass(frozen=True)
class Figures:
    """One scenario's results, as printed and as written to the JSON file."""

    scenario: str
    path: str
    events: int
    received: int
    events_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    wall_s: float | None = None  # first write to last arrival
    duplicates: int = 0
    out_of_order: int = 0  # arrivals after an event written later than them
    error: str | None = None


@dataclass
class Arrivals:
    """Counts the events of one scenario, those whose probe id starts with ``prefix``."""

    scenario: str
    path: str
    expected: int
    prefix: str
    written: int = 0
    first_write: float = 0.0
    last_arrival: float = 0.0
    duplicates: int = 0
    out_of_order: int = 0
    last_progress: str = ""
    latencies_ms: dict[str, float] = field(default_factory=dict)
    _latest_index: int = -1
    _all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def probe_id(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def start(self) -> None:
        self.first_write = time.time()

    def arrived(self, probe_id: str, made_at: datetime) -> None:
        if not probe_id.startswith(self.prefix):
            return  # another scenario's event, or the warm-up
        now = time.time()
        if probe_id in self.latencies_ms:
            self.duplicates += 1
            return
        self.latencies_ms[probe_id] = (now - made_at.timestamp()) * 1000
        self.last_arrival = now
        index = int(probe_id.removeprefix(self.prefix))
        if index < self._latest_index:
            self.out_of_order += 1
        self._latest_index = max(self._latest_index, index)
        if len(self.latencies_ms) >= self.expected:
            self._all_in.set()

    async def wait_all(
        self,
        progress: Callable[[], Awaitable[str]],
        say: Callable[[str], None],
        *,
        producer: asyncio.Future[Any],
    ) -> None:
        """Wait until every event arrived, saying how far it got each second.

        The caller bounds the wait. Raises what ``producer`` (the sending of the events)
        raised, as soon as it fails.
        """
        while not self._all_in.is_set():
            failure = producer.exception() if producer.done() else None
            if failure is not None:
                raise failure
            try:
                await asyncio.wait_for(self._all_in.wait(), 1.0)
            except TimeoutError:
                self.last_progress = await progress()
                say(f"{self.scenario}: {self.last_progress}")

    @property
    def tally(self) -> str:
        return f"{len(self.latencies_ms)}/{self.expected} received"

    def figures(self, error: str | None = None) -> Figures:
        received = len(self.latencies_ms)
        base = Figures(
            self.scenario,
            self.path,
            self.expected,
            received,
            duplicates=self.duplicates,
            out_of_order=self.out_of_order,
            error=error,
        )
        if error is not None or received == 0:
            return base
        ordered = sorted(self.latencies_ms.values())
        wall = self.last_arrival - self.first_write
        return replace(
            base,
            events_per_s=round(received / wall, 1),
            p50_ms=round(percentile(ordered, 50), 1),
            p99_ms=round(percentile(ordered, 99), 1),
            max_ms=round(ordered[-1], 1),
            wall_s=round(wall, 3),
        )


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
