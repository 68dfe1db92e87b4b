"""CPU seconds spent by the processes of a network (psutil), between two readings.

Each process the launcher started is read with its descendants (PostgreSQL's backends, forked
by the postmaster): their user and system time, and the time of children already reaped
(a backend that ended during the run still counts). ``Meter.start`` and ``Meter.stop`` bracket
a run; ``Meter.table`` says where the CPU went, per launched process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil

from deploy.processes import Supervisor


def _own(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _reaped(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.children_user + times.children_system)


def reading(pid: int) -> dict[int, float]:
    """CPU seconds by pid of ``pid`` and its living descendants; the reaped children's go to
    ``pid`` (as the kernel adds them to the parent that waited for them)."""
    try:
        top = psutil.Process(pid)
        found = {pid: _own(top) + _reaped(top)}
        children = top.children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    for child in children:
        try:
            found[child.pid] = _own(child)
        except psutil.NoSuchProcess:
            continue
    return found


@dataclass
class Meter:
    """The CPU of every process ``supervisor`` runs, from ``start`` to ``stop``."""

    supervisor: Supervisor
    before: dict[str, dict[int, float]] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, dict[int, float]]:
        return {
            managed.spec.name: reading(managed.pid)
            for managed in self.supervisor.processes
            if managed.pid is not None
        }

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        self.spent = {}
        for name, now in after.items():
            then = self.before.get(name, {})
            # A descendant that ended between the readings left its last reading in ``then``
            # and its whole time in its parent's reaped time: the difference is its share.
            total = sum(now.values()) - sum(then.values())
            self.spent[name] = round(max(total, 0.0), 3)
        return self.spent


def per_event(
    spent: dict[str, float], events: int, *, wall_s: float, idle: dict[str, float], idle_s: float
) -> dict[str, object]:
    """The JSON figures: total CPU seconds, milliseconds per event, and the table by process.

    ``idle``: what the same processes spent in ``idle_s`` seconds with nothing to do (polls,
    heartbeats, timers); at ``wall_s`` seconds of the run, that much is not the events' cost
    but the clock's, and a slow machine (fewer events a second) counts more of it per event:
    ``cpu_ms_per_event_less_idle`` takes it out."""
    total = sum(spent.values())
    idle_per_s = sum(idle.values()) / idle_s if idle_s else 0.0
    busy = max(total - idle_per_s * wall_s, 0.0)
    return {
        "cpu_s": round(total, 3),
        "events": events,
        "cpu_ms_per_event": round(total * 1000 / events, 2) if events else None,
        "idle_cpu_s_per_s": round(idle_per_s, 4),
        "cpu_ms_per_event_less_idle": round(busy * 1000 / events, 2) if events else None,
        "by_process": {
            name: {
                "cpu_s": seconds,
                "ms_per_event": round(seconds * 1000 / events, 2) if events else None,
                "share": round(seconds / total, 3) if total else None,
            }
            for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
        },
    }


def table(figures: dict[str, object], unit: str = "referral") -> list[str]:
    by_process = figures["by_process"]
    assert isinstance(by_process, dict)
    lines = [
        f"  CPU         {figures['cpu_s']} s for {figures['events']} {unit}s:"
        f" {figures['cpu_ms_per_event']} ms per {unit}; less the idle network's"
        f" {figures['idle_cpu_s_per_s']} CPU s/s: {figures['cpu_ms_per_event_less_idle']} ms"
    ]
    for name, row in by_process.items():
        lines.append(
            f"    {name:<22} {row['cpu_s']:>8} s {row['ms_per_event']:>8} ms/{unit}"
            f" {row['share'] * 100 if row['share'] is not None else 0:>6.1f} %"
        )
    return lines
