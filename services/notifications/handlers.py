"""Notifications use cases: an event becomes notifications (feed rows and queued deliveries, in
the consumer's transaction, once per event and person); the worker sends what is due and the
daily digests; the API's reads and changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from services.notifications import domain, store
from services.notifications.channels import (
    Mailer,
    SendFailed,
    SmsGateway,
    WebhookSender,
    check_destination,
    sms_gateway,
)
from services.notifications.domain import Channel, Facts, Kind, StaffMember, Trigger
from services.notifications.live import Live
from services.notifications.messages import Writer, email_message
from services.notifications.settings import NotificationSettings
from shared import processed, zones
from shared.auth import list_users
from shared.contracts.directory import OrganisationPublished
from shared.contracts.referrals import (
    ReferralChanged,
    ReferralDeadline,
    ReferralEscalated,
    ReferralView,
)
from shared.db import Connection
from shared.errors import DomainError, NotFound
from shared.events import CloudEvent, new_event_id
from shared.service import ServiceContext

log = logging.getLogger(__name__)
SCHEMA = store.SCHEMA
CONSUMER = "notifications"
BATCH = 50


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Notifier:
    """The running service: its context, settings, channels and live wake-ups."""

    ctx: ServiceContext
    settings: NotificationSettings
    live: Live = field(default_factory=Live)
    clock: Callable[[], datetime] = utc_now
    jitter: Callable[[], float] = random.random
    sms: SmsGateway | None = None
    # The directory's category labels ({code: {fr, ar, en}}), asked once it answers.
    categories: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sms is None:
            self.sms = sms_gateway(self.settings)
        self.mailer = Mailer(self.settings)
        self.webhooks = WebhookSender(self.settings)

    @property
    def available(self) -> frozenset[Channel]:
        channels = {Channel.IN_APP}
        if self.settings.mail_configured:
            channels.add(Channel.EMAIL)
        if self.sms is not None:
            channels.add(Channel.SMS)
        return frozenset(channels)

    def writer(self, lang: str, timezone: str | None = None) -> Writer:
        """A writer in ``lang``, its times in ``timezone`` (the reader's) or the node's zone."""
        node_zone = self.ctx.settings.timezone
        return Writer(
            lang,
            base_url=self.ctx.settings.base_url,
            timezone=timezone if timezone and zones.is_zone(timezone) else node_zone,
            categories=self.categories,
        )

    async def learn_categories(self, retry_every: float = 5.0) -> None:
        """Ask the node's directory for the categories' labels, until it answers."""
        while not self.categories:
            try:
                found = await self.ctx.bus.request("relais.cmd.directory.categories", {})
                self.categories = {str(code): dict(labels) for code, labels in found.items()}
            except DomainError as exc:
                log.info("notifications: category labels not available yet (%s)", exc.detail)
                await asyncio.sleep(retry_every)


_running: dict[int, Notifier] = {}


def register(notifier: Notifier) -> None:
    _running[id(notifier.ctx)] = notifier


def unregister(notifier: Notifier) -> None:
    _running.pop(id(notifier.ctx), None)


def notifier_of(ctx: ServiceContext) -> Notifier:
    """The running notifier of ``ctx`` (an app without the service's start gets a fresh one
    with settings from the environment)."""
    found = _running.get(id(ctx))
    if found is None or found.ctx is not ctx:  # an id is reused once its object is gone
        found = Notifier(ctx, NotificationSettings())
        register(found)
    return found


# --- events -> notifications ----------------------------------------------------------------


def referral_facts(view: ReferralView, **extra: Any) -> Facts:
    return Facts(
        referral_id=view.referral_id,
        category=view.category,
        urgency=view.urgency.value,
        status=view.status.value,
        from_org=view.from_org,
        to_org=view.to_org,
        **extra,
    )


async def on_referral_changed(n: Notifier, event: CloudEvent, change: ReferralChanged) -> None:
    view = change.referral
    extra: dict[str, Any] = {"change": change.change}
    if change.change == "received":
        extra |= {"deadline": "acknowledge", "due_at": view.acknowledge_by}
    trigger = domain.referral_change(
        event.id,
        box=view.box.value,
        change=change.change,
        facts=referral_facts(view, **extra),
        created_by=view.created_by,
    )
    await notify(n, event.id, [trigger] if trigger else [])


async def on_deadline(n: Notifier, event: CloudEvent, deadline: ReferralDeadline) -> None:
    view = deadline.referral
    trigger = domain.deadline(
        event.id,
        box=view.box.value,
        kind=deadline.kind,
        facts=referral_facts(view, deadline=deadline.deadline, due_at=deadline.due_at),
        created_by=view.created_by,
    )
    await notify(n, event.id, [trigger])


async def on_escalated(n: Notifier, event: CloudEvent, escalated: ReferralEscalated) -> None:
    facts = Facts(
        referral_id=escalated.referral_id,
        category=escalated.category,
        urgency=escalated.urgency.value,
        status=escalated.status.value,
        deadline=escalated.deadline,
        due_at=escalated.due_at,
        from_org=escalated.from_org,
        to_org=escalated.to_org,
    )
    await notify(n, event.id, [Trigger(event.id, Kind.REFERRAL_ESCALATED, facts)])


async def on_organisation(n: Notifier, event: CloudEvent, record: OrganisationPublished) -> None:
    """Only this node's own organisation concerns its admins."""
    if record.org_id != n.ctx.settings.org:
        return
    after = domain.OrganisationSeen(
        record.version, record.status.value, frozenset(k.key_id for k in record.keys)
    )
    staff = await active_staff(n)
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SCHEMA, CONSUMER, event.id):
            return
        before = await store.organisation_seen(conn, record.org_id)
        await store.save_organisation_seen(conn, record.org_id, after)
        for trigger in domain.organisation_changes(event.id, record.org_id, before, after):
            await write(n, conn, trigger, staff)


async def active_staff(n: Notifier) -> list[StaffMember]:
    return [
        StaffMember(u.username, u.role.value, u.language.value)
        for u in await list_users(n.ctx.pool)
        if not u.disabled
    ]


async def notify(n: Notifier, event_id: str, triggers: Sequence[Trigger]) -> None:
    """Record the event's notifications once, however often the event is delivered."""
    staff = await active_staff(n) if triggers else []
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SCHEMA, CONSUMER, event_id):
            return
        for trigger in triggers:
            await write(n, conn, trigger, staff)


async def write(
    n: Notifier, conn: Connection, trigger: Trigger, staff: Sequence[StaffMember]
) -> int:
    """Feed rows and queued deliveries for one trigger, in the caller's transaction; returns
    how many people were notified."""
    rule = domain.rules_with(await store.rule_overrides(conn))[trigger.kind]
    audience = domain.audience(trigger, rule, staff)
    preferences = await store.preferences(conn, [m.username for m in audience])
    hooks = await store.active_webhooks(conn)
    plan = domain.plan(trigger, rule, staff, preferences, hooks, n.available)
    now = n.clock()
    give_up_at = now + timedelta(seconds=n.settings.retry_window)
    items = [{"kind": trigger.kind.value, "facts": trigger.facts.model_dump(mode="json")}]
    notified = 0
    for person in plan.people:
        added = await store.add_notification(
            conn,
            id=UUID(new_event_id()),
            event_id=trigger.event_id,
            recipient=person.username,
            kind=trigger.kind,
            facts=trigger.facts,
            emergency=trigger.emergency,
            at=now,
        )
        if added is None:
            continue
        notified += 1
        for channel in sorted(person.channels):
            await store.add_delivery(
                conn,
                id=UUID(new_event_id()),
                key=f"{trigger.event_id}:{person.username}:{channel}",
                channel=channel.value,
                recipient=person.username,
                webhook_id=None,
                kind=trigger.kind.value,
                items=items,
                held=person.held,
                emergency=trigger.emergency,
                at=now,
                give_up_at=give_up_at,
            )
        await store.wake(conn, store.FEED_CHANNEL, person.username)
    for hook in plan.webhooks:
        await store.add_delivery(
            conn,
            id=UUID(new_event_id()),
            key=f"{trigger.event_id}:webhook:{hook}",
            channel="webhook",
            recipient=hook,
            webhook_id=UUID(hook),
            kind=trigger.kind.value,
            items=items,
            held=False,
            emergency=trigger.emergency,
            at=now,
            give_up_at=give_up_at,
        )
    await store.wake(conn, store.WORK_CHANNEL)
    return notified


# --- the worker -----------------------------------------------------------------------------


class Skip(Exception):
    """A delivery that no retry can make: its person has no address any more, its webhook was
    disabled."""


async def run_worker(n: Notifier) -> None:
    """Send what is due and the digests, until cancelled; woken by new work, else by the
    earliest retry or the poll interval."""
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
    await asyncio.gather(*(attempt(n, row) for row in rows))
    return len(rows)


async def attempt(n: Notifier, row: asyncpg.Record) -> None:
    started = time.monotonic()
    outcome, detail = "sent", ""
    try:
        await deliver(n, row)
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


async def deliver(n: Notifier, row: asyncpg.Record) -> None:
    channel = row["channel"]
    entries = [(Kind(i["kind"]), Facts.model_validate(i["facts"])) for i in row["items"]]
    if channel == "webhook":
        async with n.ctx.pool.acquire() as conn:
            hook = await store.webhook(conn, row["webhook_id"])
        if hook is None or not hook["enabled"]:
            raise Skip("the webhook was disabled or removed")
        kind, facts = entries[0]
        document = {
            "id": str(row["id"]),
            "type": kind.value,
            "occurred_at": row["created_at"].isoformat(),
            "org": n.ctx.settings.org,
            "data": facts.outside_view(),
            "link": n.writer("en").link(facts),
        }
        await n.webhooks.send(hook["url"], hook["secret"], str(row["id"]), document)
        return
    async with n.ctx.pool.acquire() as conn:
        preference = await store.preference(conn, row["recipient"])
    staff = {m.username: m for m in await active_staff(n)}
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
        await store.record_attempt(
            conn,
            row["id"],
            at=now,
            outcome=outcome,
            detail=detail,
            duration_ms=duration_ms,
            retry_at=retry_at,
        )
        if webhook_id is None:
            return
        if outcome == "sent":
            await store.webhook_succeeded(conn, webhook_id)
            return
        failures = await store.webhook_failed(conn, webhook_id)
        if failures >= n.settings.webhook_max_failures or outcome == "gave_up":
            await disable_failing_webhook(n, conn, webhook_id, failures, staff)


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
        if queued:
            await store.wake(conn, store.WORK_CHANNEL)
    return queued


# --- the API's use cases --------------------------------------------------------------------


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
