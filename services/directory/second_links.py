"""On the hub: a second leaf link refused for a member's credentials is noticed (issue 16).

The hub allows one leaf link per member account (``max_leafnodes: 1``), so a second nats-server
started with a copy of a member's nkey is refused while the member's node is linked. The hub's
nats-server says so only in its system account: nats-server 2.15 publishes, for the refused
link, a ``client_disconnect`` advisory on ``$SYS.ACCOUNT.<account>.DISCONNECT`` of kind
``Leafnode`` with the reason ``Maximum Account Connections Exceeded`` (tried on the real server:
no ``CLIENT.AUTH.ERR``, the credentials themselves being good, and no ``LEAFNODE.CONNECT``).

The directory listens there and makes of the refusals one incident per member while they keep
coming (a refused nats-server retries every second): audited at the hub when it opens, shown to
the coordinators on the network page, and told to the member's node (``SecondLinkRefused``),
whose admins are notified. An advisory is core NATS, not kept: one missed while the directory
restarts is made up for by the copy's next retry.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import nats

from services.directory import store
from shared import audit_trail, processed
from shared.contracts.audit import Outcome
from shared.contracts.directory import SecondLinkRefused
from shared.service import ServiceContext

log = logging.getLogger(__name__)
ADVISORIES = "$SYS.ACCOUNT.*.DISCONNECT"
REFUSED = "Maximum Account Connections Exceeded"  # nats-server's ClosedState for it
ACCOUNT_PREFIX = "ORG_"  # shared.federation.account
ADVISORY_IDS = uuid.UUID("5d9a3c1e-7f0b-4c6e-9a51-2b8e4f6d0c73")  # namespace of their uuids
QUIET = timedelta(minutes=10)  # an incident ends after as long without a refusal


async def watch(ctx: ServiceContext) -> None:
    """Read the hub's advisories for as long as the service runs (under its supervisor)."""
    assert ctx.settings.nats_system_url is not None
    system = await nats.connect(
        ctx.settings.nats_system_url,
        name="relais-hub-second-links",
        connect_timeout=2,
        max_reconnect_attempts=-1,
    )
    try:
        subscription = await system.subscribe(ADVISORIES)
        async for msg in subscription.messages:
            refusal = refused_link(msg.data)
            if refusal is None:
                continue
            try:
                await record(ctx, *refusal)
            except Exception:  # the database away: the copy's next retry is counted instead
                log.exception("hub: could not record a refused second leaf link")
    finally:
        await system.close()


def refused_link(advisory: bytes) -> tuple[str, str, str | None] | None:
    """The advisory's id, member and address if it is a second leaf link refused for a
    member's account; ``None`` for every other disconnection."""
    try:
        found = json.loads(advisory)
        client = found["client"]
        if client.get("kind") != "Leafnode" or found.get("reason") != REFUSED:
            return None
        account = str(client["acc"])
        if not account.startswith(ACCOUNT_PREFIX):
            return None
        host = client.get("host")
        return str(found["id"]), account.removeprefix(ACCOUNT_PREFIX), str(host) if host else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


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
