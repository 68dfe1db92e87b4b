"""On the hub: a second leaf link refused for a member's credentials is noticed (issue 16).

The hub allows one leaf link per member account (``max_leafnodes: 1``), so a second nats-server
started with a copy of a member's nkey is refused while the member's node is linked. The hub's
nats-server says so only in its system account: nats-server 2.15 publishes, for the refused
link, a ``client_disconnect`` advisory on ``$SYS.ACCOUNT.<account>.DISCONNECT`` of kind
``Leafnode`` with the reason ``Maximum Account Connections Exceeded`` (tried on the real server:
no ``CLIENT.AUTH.ERR``, the credentials themselves being good, and no ``LEAFNODE.CONNECT``).

The same refusal meets the member's own node when it comes back quickly after its machine lost
power or its nats-server was killed where the hub could not hear the line end (no FIN reached
it): the hub still holds the dead link, and refuses the new one, until nats-server finds the
old one stale. A copy and a restart differ in what follows. A restart stops being refused as
soon as the hub drops the dead link, and the hub says so on the same subject (the held link's
own ``client_disconnect``: ``Stale Connection``, ``Read Error``...). A copy keeps being refused
while the genuine link lives on. So a refusal is held, not told, for as long as a dead link can
survive at the hub: if a link of that member closes meanwhile, the refusals before it were the
node coming back and are dropped (logged); if none closes, the link the hub held outlived the
time in which nats-server would have dropped it dead, so it is alive, the refused one was
another nats-server with the same nkey, and the incident opens with every refusal held.

How long a dead link survives is nats-server's ping rule, read from the hub's own server
(``$SYS.REQ.SERVER.PING.VARZ``: ``ping_interval``, ``ping_max``): a link that has said nothing
for an interval is pinged each interval, and closed at the ping past ``ping_max`` unanswered,
so at most ``(ping_max + 2) * ping_interval`` after its last word. nats-server's default of
2 minutes would hold a copy's alarm 8 minutes and refuse a node that came back for as long, so
the hub's configuration (deploy/nats/) pings every 10 s, twice at most: a dead link goes within
40 s, the alarm waits 45 s, and a live link still has 20 s to answer a ping (a busy link is not
pinged at all: its traffic is its proof). A refusal heard while the directory was not listening
to the hub (its system connection down) is not judged: the copy's next retry is. Measured with
the launcher (tests/e2e/test_node_back_from_a_power_cut.py): a node SIGKILLed behind a line that
stays silent, restarted at once, is refused 32 times and links again 35 s later, told to no one.

Why wait rather than ask: the hub's ``LEAFZ`` (``$SYS.REQ.ACCOUNT.<acc>.LEAFZ``) names the link
it holds (its id, rtt, counters) but not its age or its last word, so it cannot tell a live
link from a dead one the server has not yet found stale; only the ping rule can, by time. Not
covered: on a hub cluster, if the server holding the link is itself the one that died, no close
is published for it, and a leaf refused elsewhere meanwhile is told after the window.

The directory listens there and makes of the refusals one incident per member while they keep
coming (a refused nats-server retries every second): audited at the hub when it opens, shown to
the coordinators on the network page, and told to the member's node (``SecondLinkRefused``),
whose admins are notified. An advisory is core NATS, not kept: one missed while the directory
restarts is made up for by the copy's next retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import nats
from nats.aio.client import Client

from services.directory import store
from shared import audit_trail, processed
from shared.contracts.audit import Outcome
from shared.contracts.directory import SecondLinkRefused
from shared.service import ServiceContext

log = logging.getLogger(__name__)
ADVISORIES = "$SYS.ACCOUNT.*.DISCONNECT"
SETTINGS = "$SYS.REQ.SERVER.PING.VARZ"  # the hub's server's configuration, ping rule included
REFUSED = "Maximum Account Connections Exceeded"  # nats-server's ClosedState for it
ACCOUNT_PREFIX = "ORG_"  # shared.federation.account
ADVISORY_IDS = uuid.UUID("5d9a3c1e-7f0b-4c6e-9a51-2b8e4f6d0c73")  # namespace of their uuids
QUIET = timedelta(minutes=10)  # an incident ends after as long without a refusal
# nats-server's own defaults, if the hub's server cannot be asked: the longest wait.
DEFAULT_PING_INTERVAL, DEFAULT_PING_MAX = timedelta(minutes=2), 2
MARGIN = timedelta(seconds=5)  # for the advisory of the dead link's close to reach us
TICK = 1.0  # seconds between two looks at the held refusals


@dataclass(frozen=True)
class Seen:
    """A leaf link of a member that the hub closed: ``refused`` as a second link, or not (the
    link it held, closed: stale, its node gone or restarted)."""

    advisory_id: str
    org: str
    refused: bool
    at: datetime  # the hub's time of it, which orders a refusal and a close
    host: str | None = None


def read(advisory: bytes) -> Seen | None:
    """A member's leaf link closed, from a disconnect advisory; ``None`` for every other
    disconnection (clients, the hub's own accounts)."""
    try:
        found = json.loads(advisory)
        client = found["client"]
        if client.get("kind") != "Leafnode":
            return None
        account = str(client["acc"])
        if not account.startswith(ACCOUNT_PREFIX):
            return None
        host = client.get("host")
        return Seen(
            advisory_id=str(found["id"]),
            org=account.removeprefix(ACCOUNT_PREFIX),
            refused=found.get("reason") == REFUSED,
            at=datetime.fromisoformat(str(found["timestamp"])),
            host=str(host) if host else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class Held:
    """The refusals not told yet, per member, each until a dead link could no longer explain
    it (``window``) or a close of the member's link does."""

    window: timedelta
    _refusals: dict[str, list[tuple[float, Seen]]] = field(default_factory=dict)
    _closed: dict[str, datetime] = field(default_factory=dict)  # the latest close heard

    def heard(self, seen: Seen, now: float) -> None:
        """``now``: this process's monotonic clock, on which the window runs."""
        if not seen.refused:
            self._close(seen)
        elif seen.org in self._closed and seen.at <= self._closed[seen.org]:
            self._restarted(seen.org, [seen])  # heard after the close that explains it
        else:
            self._refusals.setdefault(seen.org, []).append((now, seen))

    def _close(self, seen: Seen) -> None:
        self._closed[seen.org] = max(seen.at, self._closed.get(seen.org, seen.at))
        held = self._refusals.pop(seen.org, [])
        before = [r for _, r in held if r.at <= seen.at]
        after = [(t, r) for t, r in held if r.at > seen.at]
        if after:  # refused once the link had gone: someone else took the place first
            self._refusals[seen.org] = after
        if before:
            self._restarted(seen.org, before)

    @staticmethod
    def _restarted(org: str, refusals: list[Seen]) -> None:
        log.info(
            "hub: %d leaf link(s) of %s refused while the hub still held its dead link, then"
            " closed: the node coming back, not a copy of its nkey",
            len(refusals),
            org,
        )

    def due(self, now: float) -> list[Seen]:
        """The refusals of every member whose first held one has waited the whole window with
        no close of its link: the link the hub held is alive, they were another server."""
        told: list[Seen] = []
        for org, held in list(self._refusals.items()):
            if now - held[0][0] >= self.window.total_seconds():
                told.extend(r for _, r in self._refusals.pop(org))
        return told

    def forget(self) -> None:
        """The directory stopped hearing the hub for a while: a close it missed would make a
        restart look like a copy, so what it held is not judged (a copy retries)."""
        self._refusals.clear()


async def stale_window(system: Client) -> timedelta:
    """How long the hub's nats-server can hold a dead leaf link, from its own settings."""
    interval, pings = DEFAULT_PING_INTERVAL, DEFAULT_PING_MAX
    try:
        reply = await system.request(SETTINGS, b"", timeout=2)
        varz = json.loads(reply.data)["data"]
        interval = timedelta(microseconds=int(varz["ping_interval"]) / 1000)  # nanoseconds
        pings = int(varz["ping_max"])
    except Exception:  # not answered: the longest nats-server's defaults allow
        log.warning("hub: could not read the hub's ping settings; assuming nats-server's")
    return interval * (pings + 2) + MARGIN


async def watch(ctx: ServiceContext) -> None:
    """Read the hub's advisories for as long as the service runs (under its supervisor)."""
    assert ctx.settings.nats_system_url is not None
    held = Held(window=DEFAULT_PING_INTERVAL * (DEFAULT_PING_MAX + 2) + MARGIN)

    async def not_heard() -> None:
        held.forget()

    system = await nats.connect(
        ctx.settings.nats_system_url,
        name="relais-hub-second-links",
        connect_timeout=2,
        max_reconnect_attempts=-1,
        disconnected_cb=not_heard,
    )
    telling = asyncio.create_task(tell_when_due(ctx, held), name="second links: tell")
    try:
        held.window = await stale_window(system)
        subscription = await system.subscribe(ADVISORIES)
        async for msg in subscription.messages:
            seen = read(msg.data)
            if seen is not None:
                held.heard(seen, time.monotonic())
    finally:
        telling.cancel()
        await system.close()


async def tell_when_due(ctx: ServiceContext, held: Held) -> None:
    while True:
        await asyncio.sleep(TICK)
        for refusal in held.due(time.monotonic()):
            try:
                await record(ctx, refusal.advisory_id, refusal.org, refusal.host)
            except Exception:  # the database away: the copy's next retry is counted instead
                log.exception("hub: could not record a refused second leaf link")


async def record(ctx: ServiceContext, advisory_id: str, org: str, host: str | None) -> bool:
    """Count one refusal in the member's incident, opening one if none is open (audited, and
    told to the member); whether it opened one. Once per advisory (every directory of a hub
    cluster hears each)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        # ``processed`` keys on uuids; an advisory's id is nats-server's own (a nuid).
        once = str(uuid.uuid5(ADVISORY_IDS, advisory_id))
        if not await processed.first_time(conn, store.SCHEMA, "directory.second_link", once):
            return False
        now: datetime = await conn.fetchval("SELECT now()")
        updated = await conn.fetchval(
            "UPDATE directory.link_refusal SET refused = refused + 1, last_at = $2, host = $3"
            " WHERE incident_id = (SELECT incident_id FROM directory.link_refusal"
            "  WHERE org_id = $1 AND last_at > $2::timestamptz - $4::interval"
            "  ORDER BY last_at DESC LIMIT 1)"
            " RETURNING incident_id",
            org,
            now,
            host,
            QUIET,
        )
        if updated is not None:
            return False
        incident = uuid.uuid4()
        await conn.execute(
            "INSERT INTO directory.link_refusal"
            " (incident_id, org_id, opened_at, last_at, refused, host)"
            " VALUES ($1, $2, $3, $3, 1, $4)",
            incident,
            org,
            now,
            host,
        )
        log.warning(
            "hub: refused a second leaf link with the credentials of %s (incident %s): "
            "someone may hold a copy of its nkey",
            org,
            incident,
        )
        told = SecondLinkRefused(incident_id=str(incident), opened_at=now, host=host)
        await audit_trail.record(
            conn,
            store.SCHEMA,
            actor=audit_trail.Actor(ctx.settings.org, "system:directory"),
            action="link.second_refused",
            object=f"organisation:{org}",
            content=told.model_dump(mode="json"),
            outcome=Outcome.REFUSED,
        )
        await ctx.send(conn, told, to=org, about=str(incident))
    return True


async def incidents(ctx: ServiceContext, limit: int = 100) -> list[dict[str, Any]]:
    """The refused second links, the latest incident first."""
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT incident_id, org_id, opened_at, last_at, refused, host"
            " FROM directory.link_refusal ORDER BY last_at DESC LIMIT $1",
            limit,
        )
    return [{**dict(r), "incident_id": str(r["incident_id"])} for r in rows]
