"""Who is told what, and how: the kinds of notification, the organisation's rules (defaults
and overrides), a user's preferences, and the plan of deliveries for one event.

Pure: no database, no network. What leaves the node is decided here too: ``Facts`` is all a
notification knows (metadata of a referral, never the person's data), and ``outside_view``
is the part of it that e-mail, SMS and webhooks may carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.errors import Invalid


class Kind(StrEnum):
    """What a notification is about."""

    REFERRAL_RECEIVED = "referral_received"  # a new referral in the organisation's inbox
    REFERRAL_OUTCOME = "referral_outcome"  # the recipient answered one of our referrals
    REFERRAL_CLOSED = "referral_closed"  # the sender withdrew one, or it expired, in our inbox
    CONSENT_REVOKED = "consent_revoked"  # the person withdrew consent: the data is erased
    DATA_ERASED = "data_erased"  # the recipient confirms it erased our referral's data
    DEADLINE_REMINDER = "deadline_reminder"
    DEADLINE_BREACH = "deadline_breach"
    REFERRAL_ESCALATED = "referral_escalated"  # at the hub: a deadline passed somewhere
    MEMBERSHIP_CHANGED = "membership_changed"
    KEYS_CHANGED = "keys_changed"
    WEBHOOK_DISABLED = "webhook_disabled"
    INBOX_MESSAGE = "inbox_message"  # the sender wrote on a referral in our inbox
    OUTBOX_MESSAGE = "outbox_message"  # the recipient wrote on one of our referrals
    INBOX_FILE = "inbox_file"  # the sender's file on a referral in our inbox arrived, verified
    OUTBOX_FILE = "outbox_file"  # the recipient's file on one of our referrals arrived
    LOGIN_LOCKED = "login_locked"  # sign-in to an account locked after too many wrong passwords
    # The hub refused a second network link made with this organisation's credentials.
    SECOND_LINK_REFUSED = "second_link_refused"


class Channel(StrEnum):
    """How a person is told. The in-app feed always is; the others per rule and preference."""

    IN_APP = "in_app"
    EMAIL = "email"
    SMS = "sms"


EXTERNAL = frozenset({Channel.EMAIL, Channel.SMS})
ROLES = frozenset({"caseworker", "focal_point", "coordinator", "auditor", "admin"})
# Kinds an emergency can be about: these are never silenced, never held for a digest.
URGENT_KINDS = frozenset(
    {
        Kind.REFERRAL_RECEIVED,
        Kind.DEADLINE_REMINDER,
        Kind.DEADLINE_BREACH,
        Kind.REFERRAL_ESCALATED,
    }
)
EMAIL_PATTERN = r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"  # noqa: E501
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"  # E.164: what SMS gateways take


class Facts(BaseModel):
    """Everything a notification knows: metadata, never a person's data."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    referral_id: str | None = None
    category: str | None = None
    urgency: str | None = None
    status: str | None = None
    change: str | None = None
    deadline: str | None = None  # acknowledge | answer
    due_at: datetime | None = None
    from_org: str | None = None
    to_org: str | None = None
    org_id: str | None = None  # membership and keys
    membership: str | None = None
    webhook_url: str | None = None

    @property
    def emergency(self) -> bool:
        return self.urgency == "emergency"

    def outside_view(self) -> dict[str, str]:
        """What may leave the node (e-mail, SMS, webhook): category, urgency, deadline, the
        status, and the ids a link needs; nothing else."""
        allowed = {
            "referral_id": self.referral_id,
            "category": self.category,
            "urgency": self.urgency,
            "status": self.status,
            "deadline": self.deadline,
            # A machine field: UTC ISO 8601, whatever offset the event came with.
            "due_at": self.due_at.astimezone(UTC).isoformat() if self.due_at else None,
            "membership": self.membership,
        }
        return {key: value for key, value in allowed.items() if value is not None}


@dataclass(frozen=True)
class Rule:
    """An organisation's rule for one kind: whether it notifies, whom, on which channels by
    default, and whether its webhooks get it."""

    enabled: bool
    roles: frozenset[str]
    case_worker: bool  # the staff member who sent the referral (outbox)
    channels: frozenset[Channel]
    webhook: bool = True


def _rule(*roles: str, case_worker: bool = False, sms: bool = False) -> Rule:
    channels = {Channel.IN_APP, Channel.EMAIL} | ({Channel.SMS} if sms else set())
    return Rule(True, frozenset(roles), case_worker, frozenset(channels))


DEFAULT_RULES: Mapping[Kind, Rule] = {
    Kind.REFERRAL_RECEIVED: _rule("focal_point", sms=True),
    Kind.REFERRAL_OUTCOME: _rule(case_worker=True),
    Kind.REFERRAL_CLOSED: _rule("focal_point"),
    Kind.CONSENT_REVOKED: _rule("focal_point"),
    Kind.DATA_ERASED: _rule(case_worker=True),
    Kind.DEADLINE_REMINDER: _rule("focal_point", case_worker=True),
    Kind.DEADLINE_BREACH: _rule("focal_point", case_worker=True, sms=True),
    Kind.REFERRAL_ESCALATED: _rule("coordinator"),
    Kind.MEMBERSHIP_CHANGED: _rule("admin"),
    Kind.KEYS_CHANGED: _rule("admin"),
    Kind.WEBHOOK_DISABLED: Rule(True, frozenset({"admin"}), False, frozenset(EXTERNAL), False),
    Kind.INBOX_MESSAGE: _rule("focal_point"),
    Kind.OUTBOX_MESSAGE: _rule(case_worker=True),
    Kind.INBOX_FILE: _rule("focal_point"),
    Kind.OUTBOX_FILE: _rule(case_worker=True),
    # The node's admins and the account's owner (the trigger's ``created_by``); not webhooks.
    Kind.LOGIN_LOCKED: Rule(
        True, frozenset({"admin"}), True, frozenset({Channel.IN_APP, Channel.EMAIL}), False
    ),
    # A copy of the node's nkey may be about: its admins renew the credentials; not webhooks.
    Kind.SECOND_LINK_REFUSED: Rule(
        True, frozenset({"admin"}), False, frozenset({Channel.IN_APP, Channel.EMAIL}), False
    ),
}


def rules_with(overrides: Mapping[Kind, Rule]) -> dict[Kind, Rule]:
    return {kind: overrides.get(kind, default) for kind, default in DEFAULT_RULES.items()}


def check_rule(kind: Kind, rule: Rule) -> Rule:
    unknown = rule.roles - ROLES
    if unknown:
        raise Invalid(f"unknown roles: {', '.join(sorted(unknown))}", field="roles")
    if kind is Kind.WEBHOOK_DISABLED and rule.webhook:
        raise Invalid("a failing webhook cannot be told that it fails", field="webhook")
    return rule


# --- what happened -------------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """One event's notification, before knowing who exactly receives it."""

    event_id: str
    kind: Kind
    facts: Facts
    case_worker: str | None = None  # a username, for outbox referrals

    @property
    def emergency(self) -> bool:
        return self.facts.emergency and self.kind in URGENT_KINDS


OUTCOMES = frozenset(
    {"accepted", "declined", "in_progress", "completed", "closed_unresolved", "expired", "refused"}
)


def referral_change(
    event_id: str,
    *,
    box: str,
    change: str,
    facts: Facts,
    created_by: str | None,
) -> Trigger | None:
    """The notification a change of a referral this node holds calls for, if any."""
    kind: Kind | None = None
    if box == "inbox":
        if change == "received":
            kind = Kind.REFERRAL_RECEIVED
        elif change in ("withdrawn", "expired"):
            kind = Kind.REFERRAL_CLOSED
        elif change == "consent_revoked":
            kind = Kind.CONSENT_REVOKED
        elif change == "messaged":
            kind = Kind.INBOX_MESSAGE
        elif change == "attached":
            kind = Kind.INBOX_FILE
    elif box == "outbox":
        if change == "messaged":
            kind = Kind.OUTBOX_MESSAGE
        elif change == "attached":
            kind = Kind.OUTBOX_FILE
        elif change in OUTCOMES:
            kind = Kind.REFERRAL_OUTCOME
        elif change == "key_destroyed":
            kind = Kind.DATA_ERASED
    if kind is None:
        return None  # what our own staff did (sent, accepted...) needs no telling
    return Trigger(event_id, kind, facts, created_by if box == "outbox" else None)


def deadline(
    event_id: str, *, box: str, kind: str, facts: Facts, created_by: str | None
) -> Trigger:
    chosen = Kind.DEADLINE_BREACH if kind == "breach" else Kind.DEADLINE_REMINDER
    return Trigger(event_id, chosen, facts, created_by if box == "outbox" else None)


@dataclass(frozen=True)
class OrganisationSeen:
    """What this node last knew of its own organisation's record."""

    version: int
    status: str
    key_ids: frozenset[str]


def organisation_changes(
    event_id: str, org_id: str, before: OrganisationSeen | None, after: OrganisationSeen
) -> list[Trigger]:
    """Its admins are told when their organisation's membership or keys change (not when the
    record is first seen, nor for an older version arriving late)."""
    if before is None or after.version <= before.version:
        return []
    triggers = []
    if after.status != before.status:
        triggers.append(
            Trigger(
                f"{event_id}:membership",
                Kind.MEMBERSHIP_CHANGED,
                Facts(org_id=org_id, membership=after.status),
            )
        )
    if after.key_ids != before.key_ids:
        triggers.append(Trigger(f"{event_id}:keys", Kind.KEYS_CHANGED, Facts(org_id=org_id)))
    return triggers


# --- who, and on which channels ------------------------------------------------------------


@dataclass(frozen=True)
class StaffMember:
    username: str
    role: str
    language: str


@dataclass(frozen=True)
class Preference:
    """A user's choices; ``channels`` per kind overrides the rule's default for that kind."""

    username: str
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    digest: bool = False
    channels: Mapping[Kind, frozenset[Channel]] = field(default_factory=dict)
    timezone: str | None = None  # IANA name; None: the node's zone


@dataclass(frozen=True)
class Webhook:
    id: str
    kinds: frozenset[Kind]  # empty: every kind its rules send to webhooks


@dataclass(frozen=True)
class Planned:
    """One person's notification, and on which outside channels it goes (now or in a digest)."""

    username: str
    channels: frozenset[Channel]
    held: bool


@dataclass(frozen=True)
class Plan:
    people: list[Planned]
    webhooks: list[str]


def audience(trigger: Trigger, rule: Rule, staff: Iterable[StaffMember]) -> list[StaffMember]:
    chosen = {m.username: m for m in staff if m.role in rule.roles}
    if rule.case_worker and trigger.case_worker is not None:
        for member in staff:
            if member.username == trigger.case_worker:
                chosen[member.username] = member
    return [chosen[name] for name in sorted(chosen)]


def plan(
    trigger: Trigger,
    rule: Rule,
    staff: Iterable[StaffMember],
    preferences: Mapping[str, Preference],
    webhooks: Iterable[Webhook],
    available: frozenset[Channel],
) -> Plan:
    """Who is told and how. An emergency is never silenced: the organisation's rule and the
    user's choices may add channels, not remove them, and it is never held for a digest."""
    urgent = trigger.emergency
    if not rule.enabled and not urgent:
        return Plan([], [])
    people = []
    for member in audience(trigger, rule, staff):
        preference = preferences.get(member.username, Preference(member.username))
        chosen = preference.channels.get(trigger.kind, rule.channels)
        if urgent:
            chosen = chosen | rule.channels | {Channel.EMAIL}
        reachable = {Channel.IN_APP}
        if preference.email:
            reachable.add(Channel.EMAIL)
        if preference.phone:
            reachable.add(Channel.SMS)
        outside = frozenset(chosen & reachable & available & EXTERNAL)
        people.append(Planned(member.username, outside, preference.digest and not urgent))
    hooks = []
    if rule.webhook:
        hooks = [h.id for h in webhooks if not h.kinds or trigger.kind in h.kinds]
    return Plan(people, sorted(hooks))


# --- retries -------------------------------------------------------------------------------


def retry_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds before the next try after ``attempt`` failures: exponential, capped, with
    "equal jitter" (``jitter`` in [0, 1)) so that many failing deliveries spread out."""
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + ceiling / 2 * jitter


def check_email(value: str) -> str:
    if len(value) > 254 or not re.match(EMAIL_PATTERN, value):
        raise Invalid("not an e-mail address", field="email")
    return value
