"""How a service records what it did for the node's audit log: in the same transaction.

    await audit_trail.record(conn, "referrals", actor=audit_trail.actor_of(principal),
                             action="referral.accepted", object=f"referral:{rid}",
                             content=event_data)

The record goes through the service's outbox on ``relais.local.<service>.recorded``; the audit
service chains it. ``content`` is digested here and never leaves the service.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared import outbox
from shared.auth.roles import Principal
from shared.canonical import legacy
from shared.contracts.audit import AuditRecorded, Outcome
from shared.db import Connection
from shared.events import make_event, registry


@dataclass(frozen=True)
class Actor:
    org: str
    name: str  # user:<username>, token:<id> or system:<service>


def actor_of(principal: Principal) -> Actor:
    prefix = "user" if principal.kind == "user" else "token"
    name = principal.subject.removeprefix("token:")
    return Actor(principal.org, f"{prefix}:{name}")


def system(org: str, service: str) -> Actor:
    return Actor(org, f"system:{service}")


def digest(content: Any) -> str:
    """SHA-256 (hex) of ``content`` as sorted-key JSON: a fingerprint for the service that
    holds the content, which never leaves it, so nobody elsewhere recomputes it. It keeps the
    legacy form (``shared.canonical``), which takes any JSON value: RFC 8785 would refuse some
    (whole numbers beyond 2**53, non-text keys) in the middle of the action being recorded."""
    return hashlib.sha256(legacy(content)).hexdigest()


async def record(
    conn: Connection,
    service: str,
    *,
    actor: Actor,
    action: str,
    object: str,
    content: Any = None,
    outcome: Outcome = Outcome.OK,
) -> None:
    """Write the audit record of an action into ``service``'s outbox, in ``conn``'s
    transaction."""
    subject, event = entry(
        service, actor=actor, action=action, object=object, content=content, outcome=outcome
    )
    await outbox.add(conn, service, subject, event)


def entry(
    service: str,
    *,
    actor: Actor,
    action: str,
    object: str,
    content: Any = None,
    outcome: Outcome = Outcome.OK,
) -> outbox.Outgoing:
    """The audit record of an action, for ``service``'s outbox with the change's other events
    (``ServiceContext.write``)."""
    payload = AuditRecorded(
        at=datetime.now(UTC),
        actor_org=actor.org,
        actor=actor.name,
        action=action,
        object=object,
        digest="" if content is None else digest(content),
        outcome=outcome,
    )
    subject = registry.for_payload(AuditRecorded).subject(service=service)
    return subject, make_event(payload, source=f"relais://{actor.org}/{service}", subject=object)
