"""The delivery worker: sends what is due (e-mail, SMS, webhooks), records each attempt and
retries with back-off, and queues the daily digests between rounds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from uuid import UUID

import asyncpg

from services.notifications import domain, store
from services.notifications.channels import SendFailed
from services.notifications.domain import Facts, Kind, StaffMember
from services.notifications.handlers.digests import send_digests
from services.notifications.handlers.notifier import Notifier, active_staff
from services.notifications.handlers.webhooks import disable_failing_webhook, secret_of
from services.notifications.messages import email_message
from services.notifications.webhook_channel import cloud_event
from services.notifications.webhook_secrets import SecretUnreadable

log = logging.getLogger(__name__)
BATCH = 50


class Skip(Exception):
    """A delivery that no retry can make: its person has no address any more, its webhook was
    disabled."""


async def run_worker(n: Notifier) -> None:
    """Send what is due and the digests, until cancelled; woken by new work, else by the
    earliest retry or the poll interval."""
    try:
        await _rounds(n)
    finally:
        n.mailer.close()  # its kept SMTP connections


async def _rounds(n: Notifier) -> None:
    while True:
        n.live.work.clear()
        wait = n.settings.worker_poll
        try:
            if await send_due(n) == BATCH:
                continue
            await send_digests(n, n.clock())
            async with n.ctx.pool.acquire() as conn:
                next_due = await store.next_due(conn)
            if next_due is not None:
                wait = max(0.0, min(wait, (next_due - n.clock()).total_seconds()))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("notifications worker paused (%s)", exc)
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(n.live.work.wait(), wait)


async def send_due(n: Notifier) -> int:
    now = n.clock()
    lease = timedelta(seconds=n.settings.send_timeout * 3 + 30)
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        rows = await store.claim_due(conn, now=now, lease_until=now + lease, limit=BATCH)
    # Who may be written to, read once for the batch rather than once for each of its mails.
    staff = (
        {m.username: m for m in await active_staff(n)}
        if any(row["channel"] != "webhook" for row in rows)
        else {}
    )
    await asyncio.gather(*(attempt(n, row, staff) for row in rows))
    return len(rows)


async def attempt(n: Notifier, row: asyncpg.Record, staff: dict[str, StaffMember]) -> None:
    started = time.monotonic()
    outcome, detail = "sent", ""
    try:
        await deliver(n, row, staff)
    except Skip as exc:
        outcome, detail = "skipped", str(exc)
    except SendFailed as exc:
        outcome, detail = "failed", str(exc)
    except Exception as exc:  # a bug must not stop the other deliveries, nor the worker
        log.exception("notifications: delivery %s failed", row["id"])
        outcome, detail = "failed", f"internal error ({type(exc).__name__})"
    duration_ms = int((time.monotonic() - started) * 1000)
    try:
        await record(n, row, outcome, detail[:500], duration_ms)
    except (OSError, asyncpg.PostgresError) as exc:  # the lease brings it back later
        log.warning("notifications: cannot record delivery %s (%s)", row["id"], exc)


async def deliver(n: Notifier, row: asyncpg.Record, staff: dict[str, StaffMember]) -> None:
    channel = row["channel"]
    entries = [(Kind(i["kind"]), Facts.model_validate(i["facts"])) for i in row["items"]]
    if channel == "webhook":
        async with n.ctx.pool.acquire() as conn:
            hook = await store.webhook(conn, row["webhook_id"])
        if hook is None or not hook["enabled"]:
            raise Skip("the webhook was disabled or removed")
        kind, facts = entries[0]
        try:
            secret = secret_of(n, hook)
        except SecretUnreadable as exc:
            raise SendFailed(str(exc)) from exc
        event = cloud_event(
            id=str(row["id"]),
            kind=kind.value,
            source=f"relais://{n.ctx.settings.node_id}/notifications",
            time=row["created_at"],
            subject=facts.referral_id or facts.org_id,
            data={
                **facts.outside_view(),
                "org": n.ctx.settings.org,
                "link": n.writer("en").link(facts),
            },
        )
        await n.webhooks.send(hook["url"], secret, str(row["id"]), event)
        return
    async with n.ctx.pool.acquire() as conn:
        preference = await store.preference(conn, row["recipient"])
    member = staff.get(row["recipient"])
    if member is None or preference is None:
        raise Skip("no such active user, or no contact")
    lang = preference.language or member.language
    writer = n.writer(lang, preference.timezone)
    digest = row["kind"] == "digest"
    rendered = writer.digest(entries) if digest else writer.single(*entries[0])
    if channel == "email":
        if not preference.email:
            raise Skip("no e-mail address")
        message = email_message(
            rendered, to=preference.email, sender=n.settings.mail_from, lang=writer.lang
        )
        await n.mailer.send(message)
    elif channel == "sms":
        if not preference.phone or n.sms is None:
            raise Skip("no phone number, or no SMS gateway")
        items = [writer.item(kind, facts) for kind, facts in entries]
        await n.sms.send(preference.phone, writer.sms(rendered, items))


async def record(
    n: Notifier, row: asyncpg.Record, outcome: str, detail: str, duration_ms: int
) -> None:
    now = n.clock()
    webhook_id: UUID | None = row["webhook_id"]
    staff = await active_staff(n) if outcome == "failed" and webhook_id else []
    retry_at = None
    if outcome == "failed":
        if now >= row["give_up_at"]:
            outcome = "gave_up"
        else:
            delay = domain.retry_delay(
                row["attempts"] + 1,
                base=n.settings.retry_base,
                cap=n.settings.retry_cap,
                jitter=n.jitter(),
            )
            retry_at = now + timedelta(seconds=delay)
    if outcome != "skipped" and webhook_id is None:
        # A mail's or a text's attempt is one statement, atomic by itself: no BEGIN and
        # COMMIT around it (two round trips of three).
        async with n.ctx.pool.acquire() as conn:
            await store.record_attempt(
                conn,
                row["id"],
                at=now,
                outcome=outcome,
                detail=detail,
                duration_ms=duration_ms,
                retry_at=retry_at,
            )
        return
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        if outcome == "skipped":
            await store.record_attempt(
                conn,
                row["id"],
                at=now,
                outcome="gave_up",
                detail=detail,
                duration_ms=duration_ms,
                retry_at=None,
            )
            await store.cancel(conn, row["id"], detail)
            return
        await store.record_attempt(
            conn,
            row["id"],
            at=now,
            outcome=outcome,
            detail=detail,
            duration_ms=duration_ms,
            retry_at=retry_at,
        )
        assert webhook_id is not None
        if outcome == "sent":
            await store.webhook_succeeded(conn, webhook_id)
            return
        failures = await store.webhook_failed(conn, webhook_id)
        if failures >= n.settings.webhook_max_failures or outcome == "gave_up":
            await disable_failing_webhook(n, conn, webhook_id, failures, staff)
