"""A per-sender budget of refused envelopes: one organisation flooding this node with envelopes
it must refuse leaves one incident, not thousands of dead letters (issue 16, back-pressure).

Every delivery from another organisation that the referrals consumer would park (an envelope
refused on arrival, a message it cannot read or does not handle) is counted against its sender,
in a window of ``refusal_budget_minutes``. Within ``refusal_budget`` such deliveries, each is
handled as before: a dead letter for an operator, an answer to the sender. Past it, an incident
opens: the rest are taken and dropped, counted in it, without a dead letter, an audit record or
an answer each (a flood would make the node answer it in kind), and the hub is told
(``FloodReported``, again at most once a minute as it grows) so that its coordinators see
"organisation X sent N refused envelopes in M minutes" and can suspend it. The incident ends
when the sender has been quiet for a window; its next refusal starts a new count.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from shared import audit_trail
from shared.bus import Delivery
from shared.contracts.audit import Outcome
from shared.contracts.directory import FloodReported
from shared.db import Connection
from shared.service import ServiceContext

log = logging.getLogger(__name__)
SERVICE = "referrals"
REPORT_EVERY = timedelta(minutes=1)  # how often a growing incident is reported again


async def flooding(ctx: ServiceContext, sender: str) -> bool:
    """Whether ``sender`` is over its budget now: its refused envelopes are parked silently."""
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT incident_id, last_at, referrals.clock_now() AS now"
            " FROM referrals.refusal_watch WHERE sender = $1",
            sender,
        )
    return row is not None and row["incident_id"] is not None and not _quiet(ctx, row)


def _quiet(ctx: ServiceContext, row: Any) -> bool:
    window = timedelta(minutes=ctx.settings.refusal_budget_minutes)
    return bool(row["last_at"] < row["now"] - window)


async def refused(ctx: ServiceContext, delivery: Delivery, reason: str) -> bool:
    """Count a delivery the consumer is about to park against its sender; ``True`` if it is
    past the budget and taken into the sender's incident instead (the bus then acks it)."""
    sender = delivery.sender
    if sender is None or sender == ctx.settings.org:
        return False
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _watch(conn, sender)
        now = row["now"]
        window = timedelta(minutes=ctx.settings.refusal_budget_minutes)
        since, count, incident = row["since"], row["refused"], row["incident_id"]
        if _quiet(ctx, row) or (incident is None and since < now - window):
            since, count, incident = now, 0, None  # a new window (an incident ended)
        count += 1
        reported = row["reported_at"] if incident is not None else None
        if incident is None and count > ctx.settings.refusal_budget:
            incident = uuid.uuid4()
            await conn.execute(
                "INSERT INTO referrals.floods (incident_id, sender, opened_at, last_at, refused)"
                " VALUES ($1, $2, $3, $4, $5)",
                incident,
                sender,
                since,
                now,
                count,
            )
            log.warning(
                "referrals: %s sent %d refused envelopes since %s: the rest are parked as "
                "incident %s",
                sender,
                count,
                since.isoformat(),
                incident,
            )
            await audit_trail.record(
                conn,
                SERVICE,
                actor=audit_trail.Actor(sender, "system:referrals"),
                action="flood.opened",
                object=f"flood:{incident}",
                content={"sender": sender, "refused": count, "since": since.isoformat()},
                outcome=Outcome.FAILED,
            )
        elif incident is not None:
            await conn.execute(
                "UPDATE referrals.floods SET refused = $2, last_at = $3 WHERE incident_id = $1",
                incident,
                count,
                now,
            )
        if incident is not None and (reported is None or reported < now - REPORT_EVERY):
            await _report(ctx, conn, incident, sender, since, now, count)
            reported = now
        await conn.execute(
            "UPDATE referrals.refusal_watch SET since = $2, last_at = $3, refused = $4,"
            " incident_id = $5, reported_at = $6 WHERE sender = $1",
            sender,
            since,
            now,
            count,
            incident,
            reported,
        )
    if incident is not None:
        log.debug(
            "referrals: parked a delivery from %s in incident %s: %s", sender, incident, reason
        )
    return incident is not None


async def _watch(conn: Connection, sender: str) -> Any:
    await conn.execute(
        "INSERT INTO referrals.refusal_watch (sender, since, last_at, refused)"
        " VALUES ($1, referrals.clock_now(), referrals.clock_now(), 0)"
        " ON CONFLICT (sender) DO NOTHING",
        sender,
    )
    return await conn.fetchrow(
        "SELECT *, referrals.clock_now() AS now FROM referrals.refusal_watch"
        " WHERE sender = $1 FOR UPDATE",
        sender,
    )


async def _report(
    ctx: ServiceContext,
    conn: Connection,
    incident: uuid.UUID,
    sender: str,
    since: datetime,
    now: datetime,
    count: int,
) -> None:
    report = FloodReported(
        incident_id=str(incident), sender=sender, opened_at=since, last_at=now, refused=count
    )
    await ctx.send(conn, report, to=ctx.settings.hub_org, about=str(incident))


async def report_growing(ctx: ServiceContext) -> int:
    """Tell the hub the latest figures of every incident that grew since its last report (the
    deadline clock calls this each tick): a flood's end is reported, not only its start."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT sender, incident_id, since, last_at, refused FROM referrals.refusal_watch"
            " WHERE incident_id IS NOT NULL AND reported_at < last_at FOR UPDATE SKIP LOCKED"
        )
        for row in rows:
            await _report(
                ctx,
                conn,
                row["incident_id"],
                row["sender"],
                row["since"],
                row["last_at"],
                row["refused"],
            )
            await conn.execute(
                "UPDATE referrals.refusal_watch SET reported_at = last_at WHERE sender = $1",
                row["sender"],
            )
    return len(rows)


async def incidents(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """This node's incidents, the latest first."""
    rows = await conn.fetch(
        "SELECT incident_id, sender, opened_at, last_at, refused FROM referrals.floods"
        " ORDER BY last_at DESC LIMIT $1",
        limit,
    )
    return [{**dict(r), "incident_id": str(r["incident_id"])} for r in rows]
