"""``relais demo stop|start <node>``: a second terminal tells the running demo to take one node
off the network (its node process, then its nats-server) or to bring it back, and the demo's
own terminal tells the story: what waited, and how soon it crossed once the link returned.

The channel is a Unix socket, ``<root>/control.sock``, that only the demo's user can open; one
JSON object per line each way. Requests: ``{"do": "processes"}``, ``{"do": "stop", "node":
"amal"}``, ``{"do": "start", "node": "amal"}``. Answers: ``{"ok": true, ...}`` or ``{"ok":
false, "error": "..."}``. ``processes`` also gives, for each stopped node, where its streams
stood when it stopped, so that ``relais status`` can count what waits for it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.js import JetStreamContext

from deploy.network import Network, NodePlan
from deploy.processes import StartupFailed
from shared.federation import INBOX, OUTBOX, account_api
from shared.ops import last_sourced
from shared.text import gettext as _

SOCKET = "control.sock"
WATCH_LIMIT = 120.0  # seconds the story waits for a backlog to cross before giving up on it


def socket_path(root: Path) -> Path:
    return root / SOCKET


def is_running(root: Path) -> bool:
    """Whether a demo answers on ``root``'s control socket (a killed one leaves the file)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(socket_path(root)))
        except OSError:
            return False
    return True


@dataclass
class Stopped:
    """A node taken off the network, and how far its streams had copied when it went."""

    at: str
    positions: dict[str, int] = field(default_factory=dict)


@dataclass
class DemoControl:
    """Serves the control socket for one running demo network."""

    network: Network
    say: Callable[[str], None]
    stopped: dict[str, Stopped] = field(default_factory=dict)
    _server: asyncio.AbstractServer | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _watches: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self) -> None:
        path = socket_path(self.network.root)
        path.unlink(missing_ok=True)  # left by a launcher that was killed
        self._server = await asyncio.start_unix_server(self._handle, path=str(path))
        path.chmod(0o600)

    async def close(self) -> None:
        for task in self._watches:
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        socket_path(self.network.root).unlink(missing_ok=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline() or b"{}")
            answer = await self.answer(request)
        except (json.JSONDecodeError, AttributeError):
            answer = {"ok": False, "error": _("The request is not a JSON object.")}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        action = request.get("do")
        if action == "processes":
            return {"ok": True, "processes": self.processes(), "stopped": self._stopped()}
        node = str(request.get("node", ""))
        known = [p.node_id for p in self.network.plans]
        if node not in known:
            return {
                "ok": False,
                "error": _("No node %(node)s in this demo; choose one of %(known)s.")
                % {"node": node, "known": ", ".join(known)},
            }
        if action not in ("stop", "start"):
            return {"ok": False, "error": _("Unknown request; use stop or start.")}
        async with self._lock:
            try:
                if action == "stop":
                    return await self.stop_node(self.network.plan(node))
                return await self.start_node(self.network.plan(node))
            except StartupFailed as exc:
                self.say(str(exc))
                return {"ok": False, "error": str(exc)}

    # -- the processes ---------------------------------------------------------------------

    def processes(self) -> list[dict[str, Any]]:
        """Every process the launcher runs or was told to stop, with its state."""
        found = []
        for managed in self.network.supervisor.processes:
            if managed.running:
                state = "running"
            else:
                state = "stopped" if managed.stopping else "restarting"
            found.append(
                {
                    "name": managed.spec.name,
                    "state": state,
                    "pid": managed.pid if managed.running else None,
                    "restarts": managed.restarts,
                }
            )
        for node in self.stopped:
            for name in (f"node-{node}", f"nats-{node}"):
                found.append({"name": name, "state": "stopped", "pid": None, "restarts": 0})
        return found

    def _stopped(self) -> dict[str, Any]:
        return {node: {"at": s.at, "positions": s.positions} for node, s in self.stopped.items()}

    # -- stop ------------------------------------------------------------------------------

    async def stop_node(self, plan: NodePlan) -> dict[str, Any]:
        node = plan.node_id
        if node in self.stopped:
            return {"ok": False, "error": _("%(node)s is already stopped.") % {"node": node}}
        positions = await self._positions(plan)
        self.say(_("%(node)s: stopping its node process and its nats-server…") % {"node": node})
        await self.network.supervisor.stop(f"node-{node}")
        await self.network.supervisor.stop(f"nats-{node}")
        self.stopped[node] = Stopped(at=datetime.now(UTC).isoformat(), positions=positions)
        if plan.is_hub:
            self.say(
                _(
                    "%(node)s: stopped. The members keep working; what they send waits in their"
                    " OUTBOX until the hub is back. `relais demo start %(node)s` to bring it back."
                )
                % {"node": node}
            )
        else:
            self.say(
                _(
                    "%(node)s: stopped. What is sent to it waits at the hub (TO_%(org)s)."
                    " `relais demo start %(node)s` to bring it back."
                )
                % {"node": node, "org": plan.org}
            )
        return {"ok": True, "node": node, "state": "stopped"}

    async def _positions(self, plan: NodePlan) -> dict[str, int]:
        """How far this node's copies had got: the member's ``INBOX`` in the hub's
        ``TO_<org>``; the hub's ``FROM_<org>`` in each member's ``OUTBOX``."""
        positions: dict[str, int] = {}
        with contextlib.suppress(Exception):  # a position we cannot read is simply not known
            # On the hub, each member's FROM_ is in the member's own account.
            names = (
                [(f"FROM_{m.org}", account_api(m.org)) for m in self.network.members]
                if plan.is_hub
                else [(INBOX, None)]
            )
            for name, api in names:
                async with _jetstream(plan.nats_url, api) as js:
                    info = await js.stream_info(name)
                    source = await last_sourced(js, name, info.state.last_seq)
                    positions[name] = source["seq"] if source else 0
        return positions

    # -- start -----------------------------------------------------------------------------

    async def start_node(self, plan: NodePlan) -> dict[str, Any]:
        node = plan.node_id
        if node not in self.stopped:
            return {"ok": False, "error": _("%(node)s is already running.") % {"node": node}}
        flows = await self._waiting(plan, self.stopped[node])
        for flow in flows:
            self.say(
                _("%(node)s: %(count)s events wait to cross (%(flow)s).")
                % {"node": node, "count": flow.waiting, "flow": flow.label}
            )
        answers = None if plan.is_hub else await self._answers(plan)
        self.say(_("%(node)s: starting its nats-server…") % {"node": node})
        started = time.monotonic()
        await self.network.supervisor.start(self.network.nats_process(plan))
        link_back = time.monotonic()
        self._watch(plan, flows, link_back)
        await self.network.start_nodes([plan])
        del self.stopped[node]
        self.say(
            _("%(node)s: node ready again after %(seconds).1fs.")
            % {"node": node, "seconds": time.monotonic() - started}
        )
        if answers is not None:
            self._watch(plan, [answers], link_back)
        return {"ok": True, "node": node, "state": "running"}

    async def _waiting(self, plan: NodePlan, stopped: Stopped) -> list[Flow]:
        """What waits to cross to (a member) or from (the hub) the stopped node."""
        flows: list[Flow] = []
        with contextlib.suppress(Exception):  # a flow we cannot count is not told
            if plan.is_hub:
                for member in self.network.members:
                    known = stopped.positions.get(f"FROM_{member.org}")
                    if member.node_id in self.stopped or known is None:
                        continue
                    async with _jetstream(member.nats_url) as js:
                        last = (await js.stream_info(OUTBOX)).state.last_seq
                    label = f"{member.node_id} OUTBOX → FROM_{member.org}"
                    stream, api = f"FROM_{member.org}", account_api(member.org)
                    flows.append(Flow(label, plan.nats_url, stream, known, last, api=api))
            elif self.network.hub.node_id not in self.stopped and INBOX in stopped.positions:
                async with _jetstream(self.network.hub.nats_url, account_api(plan.org)) as js:
                    last = (await js.stream_info(f"TO_{plan.org}")).state.last_seq
                label = f"TO_{plan.org} → {plan.node_id} INBOX"
                flows.append(Flow(label, plan.nats_url, INBOX, stopped.positions[INBOX], last))
        return [flow for flow in flows if flow.waiting > 0]

    async def _answers(self, plan: NodePlan) -> Flow | None:
        """The first event a returning member sends (its answers to what waited for it), from
        how far the hub's ``FROM_<org>`` had copied its ``OUTBOX``."""
        hub = self.network.hub
        if hub.node_id in self.stopped:
            return None
        name = f"FROM_{plan.org}"
        label = f"{plan.node_id} OUTBOX → {name}"
        api = account_api(plan.org)
        start = await Flow(label, hub.nats_url, name, 0, 0, api=api).reached()
        if start is None:
            return None
        return Flow(label, hub.nats_url, name, start, start + 1, first_only=True, api=api)

    def _watch(self, plan: NodePlan, flows: list[Flow], since: float) -> None:
        if flows:
            task = asyncio.create_task(self._follow(plan, flows, since))
            self._watches.add(task)
            task.add_done_callback(self._watches.discard)

    async def _follow(self, plan: NodePlan, flows: list[Flow], since: float) -> None:
        """Tell when each flow's first waiting event, then its last, has crossed."""
        node, deadline = plan.node_id, time.monotonic() + WATCH_LIMIT
        pending = list(flows)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polling the servers: nothing on this side to wait on
            for flow in list(pending):
                reached = await flow.reached()
                if reached is None:
                    continue
                seconds = time.monotonic() - since
                if not flow.first_told and reached > flow.start:
                    flow.first_told = True
                    self.say(
                        _(
                            "%(node)s: %(flow)s: the first event crossed"
                            " %(seconds).1fs after the link returned."
                        )
                        % {"node": node, "flow": flow.label, "seconds": seconds}
                    )
                if reached >= flow.goal:
                    pending.remove(flow)
                    if flow.first_only:
                        continue
                    self.say(
                        _("%(node)s: %(flow)s: all %(count)s events crossed in %(seconds).1fs.")
                        % {
                            "node": node,
                            "flow": flow.label,
                            "count": flow.waiting,
                            "seconds": seconds,
                        }
                    )
        for flow in pending:
            if flow.first_only:
                continue  # it had nothing to send
            self.say(
                _("%(node)s: %(flow)s: still not across after %(seconds).0fs; see `relais status`.")
                % {"node": node, "flow": flow.label, "seconds": WATCH_LIMIT}
            )


@dataclass
class Flow:
    """Events crossing a link: ``stream`` on ``server`` copies its origin, where they wait
    between sequences ``start`` (already copied) and ``goal`` (the origin's last)."""

    label: str
    server: str
    stream: str
    start: int
    goal: int
    first_only: bool = False  # tell when the first crosses, not how many: nobody knows
    first_told: bool = False
    api: str | None = None  # on the hub, a member's stream is reached in its account's API

    @property
    def waiting(self) -> int:
        return self.goal - self.start

    async def reached(self) -> int | None:
        """The origin sequence copied so far; ``None`` while the server does not answer."""
        try:
            async with _jetstream(self.server, self.api) as js:
                info = await js.stream_info(self.stream)
                source = await last_sourced(js, self.stream, info.state.last_seq)
        except Exception:
            return None
        return source["seq"] if source else 0


@contextlib.asynccontextmanager
async def _jetstream(url: str, api: str | None = None) -> AsyncIterator[JetStreamContext]:
    async def quiet(_: Exception) -> None:  # a server that is away is an answer, not an error
        return None

    nc = await nats.connect(
        url, connect_timeout=1, allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet
    )
    try:
        yield nc.jetstream(timeout=2) if api is None else nc.jetstream(prefix=api, timeout=2)
    finally:
        await nc.close()


async def ask(root: Path, request: dict[str, Any], *, wait: float = 180.0) -> dict[str, Any]:
    """Send one request to the demo running under ``root``; raises ``OSError`` if none is."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path(root)))
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), wait)
    finally:
        writer.close()
    answer: dict[str, Any] = json.loads(line or b"{}")
    return answer
