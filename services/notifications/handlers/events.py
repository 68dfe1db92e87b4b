"""An event becomes notifications: feed rows and queued deliveries, in the consumer's
transaction, once per event and person."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from services.notifications import domain, store
from services.notifications.domain import Facts, Kind, StaffMember, Trigger
from services.notifications.handlers.notifier import Notifier, active_staff
from shared import processed
from shared.bus import Delivery
from shared.contracts.audit import AuditRecorded
from shared.contracts.directory import OrganisationPublished, SecondLinkRefused
from shared.contracts.referrals import (
    ReferralChanged,
    ReferralDeadline,
    ReferralEscalated,
    ReferralView,
)
from shared.db import Connection
from shared.errors import PermanentFailure
from shared.events import CloudEvent, Payload, new_event_id

SCHEMA = store.SCHEMA
CONSUMER = "notifications"


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
    await notify(n, event.id, referral_changed(event, change))


def referral_changed(event: CloudEvent, change: ReferralChanged) -> list[Trigger]:
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
    return [trigger] if trigger else []


async def on_deadline(n: Notifier, event: CloudEvent, deadline: ReferralDeadline) -> None:
    await notify(n, event.id, deadline_passed(event, deadline))


def deadline_passed(event: CloudEvent, deadline: ReferralDeadline) -> list[Trigger]:
    view = deadline.referral
    trigger = domain.deadline(
        event.id,
        box=view.box.value,
        kind=deadline.kind,
        facts=referral_facts(view, deadline=deadline.deadline, due_at=deadline.due_at),
        created_by=view.created_by,
    )
    return [trigger]


async def on_referral_events(
    n: Notifier, items: Sequence[tuple[CloudEvent, Payload, Delivery]]
) -> None:
    """A fetch of the node's referral events (``LOCAL``) in one transaction, in stream order,
    each once however often it is delivered: what ``on_referral_changed`` and ``on_deadline``
    do one by one. The staff list is read once for the fetch."""
    triggers: list[tuple[str, list[Trigger]]] = []
    for event, payload, _ in items:
        if isinstance(payload, ReferralChanged):
            triggers.append((event.id, referral_changed(event, payload)))
        elif isinstance(payload, ReferralDeadline):
            triggers.append((event.id, deadline_passed(event, payload)))
        else:
            raise PermanentFailure(f"{CONSUMER} does not handle {event.type} in a batch")
    # An event that notifies no one has no effect to apply once: no record of it, and a fetch
    # of only such events (most of them at a sender's node) no transaction at all.
    triggers = [(event_id, made) for event_id, made in triggers if made]
    if not triggers:
        return
    staff = await active_staff(n)
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        for event_id, made in triggers:
            if not await processed.first_time(conn, SCHEMA, CONSUMER, event_id):
                continue
            for trigger in made:
                await write(n, conn, trigger, staff)


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


LOCKED = "session.login_locked"


async def on_audit_recorded(n: Notifier, event: CloudEvent, record: AuditRecorded) -> None:
    """A sign-in locked after too many wrong passwords (shared/auth/throttle.py): the node's
    admins are told, and the account's owner when the account is a known one (a lock of an
    unknown name, or of a client address, names no one)."""
    if record.action != LOCKED or not record.object.startswith("user:"):
        return
    account = record.object.removeprefix("user:")
    owner = None if account == "unknown" else account
    await notify(n, event.id, [Trigger(event.id, Kind.LOGIN_LOCKED, Facts(), owner)])


async def on_second_link_refused(
    n: Notifier, event: CloudEvent, told: SecondLinkRefused, delivery: Delivery
) -> None:
    """The hub refused a second leaf link made with this organisation's credentials
    (services/directory/second_links.py): someone may hold a copy of the node's nkey, and the
    node's admins are told, to renew the credentials. Only the hub says so."""
    if delivery.sender != n.ctx.settings.hub_org:
        raise PermanentFailure(f"only the hub tells of refused links, not {delivery.sender}")
    facts = Facts(org_id=n.ctx.settings.org)
    await notify(n, event.id, [Trigger(event.id, Kind.SECOND_LINK_REFUSED, facts)])


async def notify(n: Notifier, event_id: str, triggers: Sequence[Trigger]) -> None:
    """Record the event's notifications once, however often the event is delivered (an event
    that notifies no one has nothing to record)."""
    if not triggers:
        return
    staff = await active_staff(n)
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
    return notified
