"""Webhooks: registered (with their signing secret, shown once, kept sealed), enabled again,
and disabled after failing too often, which notifies the organisation's admins."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from services.notifications import store
from services.notifications.domain import Facts, Kind, StaffMember, Trigger
from services.notifications.handlers.events import write
from services.notifications.handlers.notifier import Notifier
from services.notifications.webhook_secrets import new_secret
from shared.db import Connection
from shared.errors import NotFound
from shared.events import new_event_id

log = logging.getLogger(__name__)


async def register_webhook(
    n: Notifier, url: str, kinds: Sequence[Kind], by: str
) -> tuple[asyncpg.Record, str]:
    """A new webhook and its signing secret (shown once)."""
    await n.webhooks.check(url)
    secret, webhook_id = new_secret(), UUID(new_event_id())
    async with n.ctx.pool.acquire() as conn:
        row = await store.add_webhook(
            conn,
            id=webhook_id,
            url=url,
            sealed_secret=n.seal.seal(webhook_id, secret),
            kinds=kinds,
            by=by,
        )
    return row, secret


def secret_of(n: Notifier, hook: asyncpg.Record) -> str:
    """A webhook's signing secret: opened, or still in clear on a row from before sealing
    (until the service's start seals it); ``SecretUnreadable`` if this node cannot open it."""
    if hook["sealed_secret"] is None:
        clear: str = hook["secret"]
        return clear
    return n.seal.open(hook["id"], hook["sealed_secret"])


async def seal_clear_secrets(n: Notifier) -> int:
    """Seal the secrets registered before they were sealed at rest; how many there were."""
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        rows = await store.clear_secrets(conn)
        for row in rows:
            await store.seal_secret(conn, row["id"], n.seal.seal(row["id"], row["secret"]))
    if rows:
        log.info("notifications: %d webhook secret(s) sealed at rest", len(rows))
    return len(rows)


async def enable_webhook(n: Notifier, webhook_id: UUID) -> asyncpg.Record:
    async with n.ctx.pool.acquire() as conn:
        hook = await store.webhook(conn, webhook_id)
        if hook is None:
            raise NotFound("no such webhook", field="webhook_id")
        await n.webhooks.check(hook["url"])
        row = await store.enable_webhook(conn, webhook_id)
    assert row is not None
    return row


async def disable_failing_webhook(
    n: Notifier, conn: Connection, webhook_id: UUID, failures: int, staff: Sequence[StaffMember]
) -> None:
    hook = await store.webhook(conn, webhook_id, lock=True)
    if hook is None or not hook["enabled"]:
        return
    now = n.clock()
    reason = f"{failures} failed attempts in a row"
    await store.disable_webhook(conn, webhook_id, reason, now)
    log.warning("notifications: webhook %s disabled after %s", webhook_id, reason)
    trigger = Trigger(
        f"webhook-disabled:{webhook_id}:{now.isoformat()}",
        Kind.WEBHOOK_DISABLED,
        Facts(webhook_url=hook["url"]),
    )
    await write(n, conn, trigger, staff)
