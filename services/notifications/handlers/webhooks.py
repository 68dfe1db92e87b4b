"""Webhooks: registered (with their signing secret, shown once), enabled again, and disabled
after failing too often, which notifies the organisation's admins."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from services.notifications import store
from services.notifications.channels import check_destination
from services.notifications.domain import Facts, Kind, StaffMember, Trigger
from services.notifications.handlers.events import write
from services.notifications.handlers.notifier import Notifier
from shared.db import Connection
from shared.errors import NotFound
from shared.events import new_event_id

log = logging.getLogger(__name__)


async def register_webhook(
    n: Notifier, url: str, kinds: Sequence[Kind], by: str
) -> tuple[asyncpg.Record, str]:
    """A new webhook and its signing secret (shown once)."""
    await check_destination(url, n.settings)
    secret = secrets.token_urlsafe(32)
    async with n.ctx.pool.acquire() as conn:
        row = await store.add_webhook(
            conn, id=UUID(new_event_id()), url=url, secret=secret, kinds=kinds, by=by
        )
    return row, secret


async def enable_webhook(n: Notifier, webhook_id: UUID) -> asyncpg.Record:
    async with n.ctx.pool.acquire() as conn:
        hook = await store.webhook(conn, webhook_id)
        if hook is None:
            raise NotFound("no such webhook", field="webhook_id")
        await check_destination(hook["url"], n.settings)
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
