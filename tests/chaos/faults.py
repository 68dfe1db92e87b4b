"""The faults, chosen at random, one at a time: inject, hold, heal, wait until the part is back.

Every fault is done to the real part the way it fails in the field: SIGKILL (a crash; the
launcher's supervisor, ``deploy.processes``, restarts the process) and SIGSTOP (a hang: the
process holds its sockets and answers nothing; nothing restarts it, SIGCONT heals it), of a
node process, a member's leaf nats-server, the hub's nats-server and PostgreSQL; PostgreSQL's
backends terminated (``pg_terminate_backend``, as an administrator or the OOM killer would);
a leaf's link to the hub cut (``LinkRelay``); and a jump of one node's referral clock.

The clock jump moves ``referrals.clock.skew`` in the node's database, the test hook that
``referrals.clock_now()`` adds to ``now()`` (services/referrals/clock.py, migration 0001): only
someone who can write the node's database can move it, never the public API. Jumps stay
within ±``CLOCK_JUMP_MAX`` so that no deadline of the referrals sent here (24 h to acknowledge
a priority one) falls due: a jump past it would expire referrals, which is what it should do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from deploy.processes import Managed
from tests.chaos.cluster import HubClusterNetwork
from tests.chaos.network import MEMBERS, ChaosNetwork

KINDS = (
    "node-kill",
    "node-pause",
    "leaf-nats-kill",
    "leaf-nats-pause",
    "hub-nats-kill",
    "hub-nats-pause",
    "postgres-kill",
    "postgres-pause",
    "backend-terminate",
    "link-cut",
    "clock-jump",
)
# With the hub as a cluster (``--hub-cluster``): one of its three servers killed or paused
# instead of the single hub's nats-server; never two at once (a fault is healed, the server
# healthy again, before the next), since the R3 streams need two of three.
HUB_SERVER_KINDS = ("hub-server-kill", "hub-server-pause")
CLUSTER_KINDS = (
    tuple(k for k in KINDS if k not in ("hub-nats-kill", "hub-nats-pause")) + HUB_SERVER_KINDS
)
NODES = ("hub", *MEMBERS)
CLOCK_JUMP_MAX = 3600.0  # seconds, either way
BACK_WITHIN = 120.0  # a killed part must be ready again within this, or the run fails


@dataclass
class Fault:
    """One fault: what, on which part, and when (monotonic seconds, and the UTC wall time)."""

    kind: str
    target: str
    injected_at: float
    wall: str
    held_s: float = 0.0
    healed_at: float | None = None  # SIGCONT sent, link back, clock back, or killed part ready
    detail: str = ""


Step = Callable[[Fault], Awaitable[None]]


class HealFailed(RuntimeError):
    """A part did not come back: the network cannot be checked, the run is void."""


@dataclass
class Injector:
    chaos: ChaosNetwork
    rng: random.Random
    kinds: Sequence[str] = KINDS
    hold: tuple[float, float] = (1.0, 4.0)  # how long a pause, a cut or a jump lasts
    faults: list[Fault] = field(default_factory=list)
    _paused: set[str] = field(default_factory=set)

    async def run(self, until: float, gap: tuple[float, float], plan: Sequence[str] = ()) -> None:
        """Faults until the monotonic time ``until``: those of ``plan`` first, in order, then
        kinds drawn at random; ``gap`` seconds of calm between two. The plan is done whole,
        even past ``until``."""
        queue = list(plan)
        while queue or time.monotonic() < until:
            kind = queue.pop(0) if queue else self.rng.choice(list(self.kinds))
            await self.one(kind)
            await asyncio.sleep(self.rng.uniform(*gap))

    async def one(self, kind: str) -> Fault:
        steps: dict[str, Callable[[], Step]] = {
            "node-kill": lambda: self._kill(f"node-{self.rng.choice(NODES)}"),
            "node-pause": lambda: self._pause(f"node-{self.rng.choice(NODES)}"),
            "leaf-nats-kill": lambda: self._kill(f"nats-{self.rng.choice(MEMBERS)}"),
            "leaf-nats-pause": lambda: self._pause(f"nats-{self.rng.choice(MEMBERS)}"),
            "hub-nats-kill": lambda: self._kill("nats-hub"),
            "hub-nats-pause": lambda: self._pause("nats-hub"),
            "hub-server-kill": lambda: self._kill(self.rng.choice(self._hub_servers())),
            "hub-server-pause": lambda: self._pause(
                self.rng.choice(self._hub_servers()), wait_ready=True
            ),
            "postgres-kill": lambda: self._kill("postgres", postmaster_only=True),
            "postgres-pause": lambda: self._pause("postgres"),
            "backend-terminate": lambda: self._terminate(self.rng.choice(NODES)),
            "link-cut": lambda: self._cut(self.rng.choice(MEMBERS)),
            "clock-jump": lambda: self._jump(self.rng.choice(MEMBERS)),
        }
        fault = Fault(kind, "", time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds"))
        self.faults.append(fault)
        await steps[kind]()(fault)
        return fault

    # -- the faults ------------------------------------------------------------------------

    def _kill(self, name: str, *, postmaster_only: bool = False) -> Step:
        async def kill(fault: Fault) -> None:
            managed = self.chaos.net.supervisor[name]
            fault.target = name
            old = managed.pid
            assert old is not None
            fault.injected_at = time.monotonic()
            if postmaster_only:  # its backends see the postmaster die and exit by themselves
                with contextlib.suppress(ProcessLookupError):
                    os.kill(old, signal.SIGKILL)
            else:
                await self.chaos.net.supervisor.kill(name, signal.SIGKILL)
            await _back(managed, old)
            fault.healed_at = time.monotonic()
            fault.detail = f"restarted by the supervisor (restart {managed.restarts})"

        return kill

    def _hub_servers(self) -> list[str]:
        net = self.chaos.net
        if not isinstance(net, HubClusterNetwork):
            raise ValueError("hub-server-* faults need the hub cluster (--hub-cluster)")
        return net.server_names

    def _pause(self, name: str, *, wait_ready: bool = False) -> Step:
        """``wait_ready``: healed only once the process is ready again (a hub server that has
        caught up with its cluster), so that the next fault never finds two servers out."""

        async def pause(fault: Fault) -> None:
            fault.target = name
            fault.held_s = self.rng.uniform(*self.hold)
            fault.injected_at = time.monotonic()
            self._paused.add(name)
            await self.chaos.net.supervisor.kill(name, signal.SIGSTOP)
            try:
                await asyncio.sleep(fault.held_s)
            finally:
                await self.chaos.net.supervisor.kill(name, signal.SIGCONT)
                self._paused.discard(name)
            if wait_ready:
                await _back(self.chaos.net.supervisor[name], None)
            fault.healed_at = time.monotonic()

        return pause

    def _terminate(self, node: str) -> Step:
        async def terminate(fault: Fault) -> None:
            net = self.chaos.net
            fault.target = f"postgres backends of {node}"
            fault.injected_at = time.monotonic()
            cut = await terminate_backends(net.postgres.url(), net.database_name(net.plan(node)))
            fault.healed_at = time.monotonic()
            fault.detail = f"{cut} backend(s) terminated"

        return terminate

    def _cut(self, member: str) -> Step:
        async def cut(fault: Fault) -> None:
            relay = self.chaos.relays[member]
            fault.target = f"leaf link of {member}"
            fault.held_s = self.rng.uniform(*self.hold)
            fault.injected_at = time.monotonic()
            fault.detail = f"{relay.cut()} connection(s) reset"
            try:
                await asyncio.sleep(fault.held_s)
            finally:
                relay.heal()
            fault.healed_at = time.monotonic()

        return cut

    def _jump(self, node: str) -> Step:
        async def jump(fault: Fault) -> None:
            url = self.chaos.net.database_url(self.chaos.net.plan(node))
            seconds = self.rng.choice((-1, 1)) * self.rng.uniform(60, CLOCK_JUMP_MAX)
            fault.target = f"referral clock of {node}"
            fault.held_s = self.rng.uniform(*self.hold)
            fault.detail = f"{seconds:+.0f} s"
            fault.injected_at = time.monotonic()
            await set_skew(url, seconds)
            try:
                await asyncio.sleep(fault.held_s)
            finally:
                await set_skew(url, 0)
            fault.healed_at = time.monotonic()

        return jump

    # -- healing everything ----------------------------------------------------------------

    async def heal_all(self) -> None:
        """Undo whatever may still be in force (after an interruption): SIGCONT the paused,
        restore the links, put every clock back, and wait until every process is ready."""
        supervisor = self.chaos.net.supervisor
        for name in list(self._paused):
            with contextlib.suppress(Exception):
                await supervisor.kill(name, signal.SIGCONT)
        self._paused.clear()
        for relay in self.chaos.relays.values():
            relay.heal()
        for managed in supervisor.processes:
            await _back(managed, None)
        for node in MEMBERS:
            await set_skew(self.chaos.net.database_url(self.chaos.net.plan(node)), 0)


async def _back(managed: Managed, old_pid: int | None) -> None:
    """Until the supervisor has a new process in place of ``old_pid`` and it is ready."""
    deadline = time.monotonic() + BACK_WITHIN
    while time.monotonic() < deadline:
        if managed.running and managed.pid != old_pid:
            ready = managed.spec.ready
            try:
                if ready is None or await asyncio.wait_for(ready(), 2):
                    return
            except Exception:  # not answering yet
                pass
        await asyncio.sleep(0.1)
    raise HealFailed(f"{managed.spec.name} not back within {BACK_WITHIN:.0f}s")


async def terminate_backends(admin_url: str, database: str) -> int:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return len(rows)


async def set_skew(database_url: str, seconds: float) -> None:
    """Move a node's referral clock to ``now() + seconds`` (the test hook; see above)."""
    for attempt in range(20):  # PostgreSQL may be restarting after an earlier fault
        try:
            conn = await asyncpg.connect(database_url, timeout=10)
            try:
                await conn.execute(
                    "UPDATE referrals.clock SET skew = make_interval(secs => $1)", float(seconds)
                )
            finally:
                await conn.close()
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)
