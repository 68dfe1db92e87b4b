"""Daily digests: what waited for a person's digest, grouped into one delivery per person and
channel at the digest hour (in the node's zone)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from services.notifications import store
from services.notifications.handlers.notifier import Notifier
from shared.events import new_event_id


def digest_cutoff(now: datetime, *, hour: int, timezone: str) -> datetime:
    """The latest digest time (``hour`` o'clock, local) at or before ``now``."""
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    cutoff = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if cutoff > local:
        cutoff -= timedelta(days=1)
    return cutoff


async def send_digests(n: Notifier, now: datetime) -> int:
    """Group what waited for each person's digest until the last digest time into one
    delivery per person and channel; returns how many digests were queued."""
    cutoff = digest_cutoff(now, hour=n.settings.digest_hour, timezone=n.ctx.settings.timezone)
    queued = 0
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        rows = await store.held(conn, before=cutoff)
        groups: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
        for row in rows:
            groups[(row["recipient"], row["channel"])].append(row)
        for (recipient, channel), held in groups.items():
            await store.add_delivery(
                conn,
                id=UUID(new_event_id()),
                key=f"digest:{recipient}:{channel}:{held[0]['id']}",
                channel=channel,
                recipient=recipient,
                webhook_id=None,
                kind="digest",
                items=[item for row in held for item in row["items"]],
                held=False,
                emergency=False,
                at=n.clock(),  # due at once, whatever moment ``now`` stands for
                give_up_at=n.clock() + timedelta(seconds=n.settings.retry_window),
            )
            await store.mark_digested(conn, [row["id"] for row in held])
            queued += 1
    return queued
