"""An operator's replay of the outbox: publish again what a service already sent, from a
sequence or a time on (after a JetStream folder was lost, or to resend what a member missed).

It is safe to replay more than needed. Each event goes out with its own id as
``Nats-Msg-Id``: within the stream's duplicate window (2 minutes) JetStream drops the repeat;
beyond it the event is stored and delivered again, and every consumer recognises it (the
``processed`` table of the receiving service, the audit chain by event id, the hub's network
log by event id) and applies nothing twice. The replay itself is recorded in the node's audit
chain, one record per service replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared import audit_trail
from shared.audit_trail import Actor
from shared.bus import Bus
from shared.db import Pool
from shared.errors import Invalid
from shared.outbox import OutboxRelay

AUDIT_SCHEMA = "auth"  # where the node's operator actions are recorded
MOROCCO = ZoneInfo("Africa/Casablanca")


@dataclass(frozen=True)
class Since:
    """Where a replay starts: an outbox sequence (of one service's table) or a time."""

    seq: int | None = None
    time: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> Since:
        """``1234`` (a sequence) or an ISO 8601 time (``2026-12-01T08:00+01:00``; a time
        without offset is Morocco's, as the operator reads it on the wall)."""
        value = text.strip()
        if value.isdigit():
            return cls(seq=int(value))
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(
                "--since is an outbox sequence (a number) or a time (2026-12-01T08:00+01:00)",
                field="since",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=MOROCCO)
        return cls(time=moment)


def chosen_services(available: list[str], service: str | None, since: Since) -> list[str]:
    """The services whose outbox a replay covers: one named, or all (from a time only: a
    sequence belongs to one service's table)."""
    if service is not None:
        if service not in available:
            raise Invalid(
                f"no service {service} on this node; choose one of {', '.join(available)}",
                field="service",
            )
        return [service]
    if since.seq is not None:
        raise Invalid("a sequence is one service's outbox: name the service too", field="service")
    return list(available)


async def replay(
    bus: Bus,
    pools: Mapping[str, Pool],
    dsn: str,
    *,
    since: Since,
    service: str | None,
    actor: Actor,
) -> dict[str, Any]:
    """Publish again each chosen service's outbox rows from ``since``; the counts by service."""
    if (since.seq is None) == (since.time is None):
        raise Invalid("give a sequence or a time to replay from", field="since")
    if AUDIT_SCHEMA not in pools:
        raise Invalid("this node runs no auth service to record the replay", field="service")
    services = chosen_services(sorted(pools), service, since)
    counts: dict[str, dict[str, Any]] = {}
    for name in services:
        pool = pools[name]
        first = since.seq
        if first is None:
            first = await pool.fetchval(
                f"SELECT min(seq) FROM {name}.outbox WHERE created_at >= $1", since.time
            )
        replayed = 0 if first is None else await OutboxRelay(pool, bus, name, dsn).replay(first)
        counts[name] = {"from_seq": first, "replayed": replayed}
    async with pools[AUDIT_SCHEMA].acquire() as conn, conn.transaction():
        for name, figures in counts.items():
            await audit_trail.record(
                conn,
                AUDIT_SCHEMA,
                actor=actor,
                action="outbox.replayed",
                object=f"outbox:{name}",
                content={
                    "since_seq": since.seq,
                    "since": since.time.isoformat() if since.time else None,
                    **figures,
                },
            )
    return {"services": counts, "replayed": sum(c["replayed"] for c in counts.values())}
