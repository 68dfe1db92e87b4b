"""The notifications schema's queries: rules, preferences, the feed, webhooks, the delivery
queue and its log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.notifications.domain import (
    Channel,
    Facts,
    Kind,
    OrganisationSeen,
    Preference,
    Rule,
    Webhook,
)
from shared.db import Connection

SCHEMA = "notifications"
FEED_CHANNEL = "relais_notifications_feed"
WORK_CHANNEL = "relais_notifications_work"


# --- rules ----------------------------------------------------------------------------------


async def rule_overrides(conn: Connection) -> dict[Kind, Rule]:
    rows = await conn.fetch("SELECT * FROM notifications.rule")
    return {
        Kind(r["kind"]): Rule(
            enabled=r["enabled"],
            roles=frozenset(r["roles"]),
            case_worker=r["case_worker"],
            channels=frozenset(Channel(c) for c in r["channels"]),
            webhook=r["webhook"],
        )
        for r in rows
        if r["kind"] in Kind.__members__.values()
    }


async def put_rule(conn: Connection, kind: Kind, rule: Rule, by: str) -> None:
    await conn.execute(
        """
        INSERT INTO notifications.rule
            (kind, enabled, roles, case_worker, channels, webhook, updated_by, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, now())
        ON CONFLICT (kind) DO UPDATE SET enabled = EXCLUDED.enabled, roles = EXCLUDED.roles,
            case_worker = EXCLUDED.case_worker, channels = EXCLUDED.channels,
            webhook = EXCLUDED.webhook, updated_by = EXCLUDED.updated_by, updated_at = now()
        """,
        kind.value,
        rule.enabled,
        sorted(rule.roles),
        rule.case_worker,
        sorted(rule.channels),
        rule.webhook,
        by,
    )


async def delete_rule(conn: Connection, kind: Kind) -> None:
    await conn.execute("DELETE FROM notifications.rule WHERE kind = $1", kind.value)


# --- preferences ----------------------------------------------------------------------------


def _preference(row: asyncpg.Record) -> Preference:
    channels = {
        Kind(kind): frozenset(Channel(c) for c in chosen)
        for kind, chosen in (row["channels"] or {}).items()
        if kind in Kind.__members__.values()
    }
    return Preference(
        username=row["username"],
        email=row["email"],
        phone=row["phone"],
        language=row["language"],
        digest=row["digest"],
        channels=channels,
        timezone=row["timezone"],
    )


async def preferences(conn: Connection, usernames: Iterable[str]) -> dict[str, Preference]:
    rows = await conn.fetch(
        "SELECT * FROM notifications.preference WHERE username = ANY($1)", list(usernames)
    )
    return {r["username"]: _preference(r) for r in rows}


async def preference(conn: Connection, username: str) -> Preference | None:
    found = await preferences(conn, [username])
    return found.get(username)


async def put_preference(conn: Connection, pref: Preference) -> None:
    await conn.execute(
        """
        INSERT INTO notifications.preference
            (username, email, phone, language, digest, channels, timezone, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, now())
        ON CONFLICT (username) DO UPDATE SET email = EXCLUDED.email, phone = EXCLUDED.phone,
            language = EXCLUDED.language, digest = EXCLUDED.digest,
            channels = EXCLUDED.channels, timezone = EXCLUDED.timezone, updated_at = now()
        """,
        pref.username,
        pref.email,
        pref.phone,
        pref.language,
        pref.digest,
        {kind.value: sorted(chosen) for kind, chosen in pref.channels.items()},
        pref.timezone,
    )


# --- the feed -------------------------------------------------------------------------------


async def add_notification(
    conn: Connection,
    *,
    id: UUID,
    event_id: str,
    recipient: str,
    kind: Kind,
    facts: Facts,
    emergency: bool,
    at: datetime,
) -> UUID | None:
    """The new notification's id, or None if this event already notified this person; a new
    one wakes the person's live feed on commit (``FEED_CHANNEL``), in the same statement."""
    found: UUID | None = await conn.fetchval(
        """
        WITH added AS (
            INSERT INTO notifications.notification
                (id, event_id, recipient, kind, facts, emergency, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (event_id, recipient) DO NOTHING RETURNING id
        )
        SELECT id, pg_notify($8, $3) FROM added
        """,
        id,
        event_id,
        recipient,
        kind.value,
        facts.model_dump(mode="json", exclude_none=True),
        emergency,
        at,
        FEED_CHANNEL,
    )
    return found


async def feed(
    conn: Connection,
    username: str,
    *,
    limit: int = 50,
    before: UUID | None = None,
    after: UUID | None = None,
    unread_only: bool = False,
) -> list[asyncpg.Record]:
    """Newest first; ``after`` (for live updates) gives the newer ones, oldest first."""
    if after is not None:
        return await conn.fetch(
            "SELECT * FROM notifications.notification WHERE recipient = $1 AND id > $2"
            " ORDER BY id LIMIT $3",
            username,
            after,
            limit,
        )
    return await conn.fetch(
        """
        SELECT * FROM notifications.notification
        WHERE recipient = $1 AND ($2::uuid IS NULL OR id < $2)
          AND (NOT $3 OR read_at IS NULL)
        ORDER BY id DESC LIMIT $4
        """,
        username,
        before,
        unread_only,
        limit,
    )


async def newest_id(conn: Connection, username: str) -> UUID | None:
    found: UUID | None = await conn.fetchval(
        "SELECT id FROM notifications.notification WHERE recipient = $1 ORDER BY id DESC LIMIT 1",
        username,
    )
    return found


async def unread(conn: Connection, username: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM notifications.notification WHERE recipient = $1 AND read_at IS NULL",
        username,
    )
    return count


async def mark_read(conn: Connection, username: str, ids: Sequence[UUID] | None) -> None:
    await conn.execute(
        """
        UPDATE notifications.notification SET read_at = now()
        WHERE recipient = $1 AND read_at IS NULL AND ($2::uuid[] IS NULL OR id = ANY($2))
        """,
        username,
        None if ids is None else list(ids),
    )


# --- webhooks -------------------------------------------------------------------------------


async def add_webhook(
    conn: Connection, *, id: UUID, url: str, sealed_secret: str, kinds: Sequence[Kind], by: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO notifications.webhook (id, url, sealed_secret, kinds, created_by)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING *",
        id,
        url,
        sealed_secret,
        [k.value for k in kinds],
        by,
    )
    assert row is not None
    return row


async def webhooks(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM notifications.webhook ORDER BY created_at, id")


async def webhook(conn: Connection, id: UUID, *, lock: bool = False) -> asyncpg.Record | None:
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow(f"SELECT * FROM notifications.webhook WHERE id = $1{suffix}", id)


async def clear_secrets(conn: Connection) -> list[asyncpg.Record]:
    """The webhooks whose secret is still in clear (registered before secrets were sealed)."""
    return await conn.fetch(
        "SELECT id, secret FROM notifications.webhook WHERE secret IS NOT NULL FOR UPDATE"
    )


async def seal_secret(conn: Connection, id: UUID, sealed_secret: str) -> None:
    await conn.execute(
        "UPDATE notifications.webhook SET sealed_secret = $2, secret = NULL WHERE id = $1",
        id,
        sealed_secret,
    )


async def active_webhooks(conn: Connection) -> list[Webhook]:
    rows = await conn.fetch("SELECT id, kinds FROM notifications.webhook WHERE enabled")
    return [
        Webhook(
            str(r["id"]), frozenset(Kind(k) for k in r["kinds"] if k in Kind.__members__.values())
        )
        for r in rows
    ]


async def delete_webhook(conn: Connection, id: UUID) -> bool:
    return bool(
        await conn.fetchval("DELETE FROM notifications.webhook WHERE id = $1 RETURNING true", id)
    )


async def enable_webhook(conn: Connection, id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE notifications.webhook SET enabled = true, disabled_at = NULL,"
        " disabled_reason = NULL, consecutive_failures = 0 WHERE id = $1 RETURNING *",
        id,
    )


async def disable_webhook(conn: Connection, id: UUID, reason: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE notifications.webhook SET enabled = false, disabled_at = $2, disabled_reason = $3"
        " WHERE id = $1 AND enabled",
        id,
        at,
        reason,
    )
    await conn.execute(
        "UPDATE notifications.delivery SET state = 'cancelled', last_error = $2"
        " WHERE webhook_id = $1 AND state IN ('pending', 'held')",
        id,
        "webhook disabled",
    )


async def webhook_failed(conn: Connection, id: UUID) -> int:
    failures: int = await conn.fetchval(
        "UPDATE notifications.webhook SET consecutive_failures = consecutive_failures + 1"
        " WHERE id = $1 RETURNING consecutive_failures",
        id,
    )
    return failures


async def webhook_succeeded(conn: Connection, id: UUID) -> None:
    await conn.execute(
        "UPDATE notifications.webhook SET consecutive_failures = 0 WHERE id = $1", id
    )


# --- the delivery queue ---------------------------------------------------------------------


async def add_delivery(
    conn: Connection,
    *,
    id: UUID,
    key: str,
    channel: str,
    recipient: str,
    webhook_id: UUID | None,
    kind: str,
    items: list[dict[str, Any]],
    held: bool,
    emergency: bool,
    at: datetime,
    give_up_at: datetime,
) -> bool:
    """Whether the delivery is new; a new one wakes the worker on commit (``WORK_CHANNEL``,
    one notification however many deliveries the transaction adds), in the same statement."""
    inserted = await conn.fetchval(
        """
        WITH added AS (
            INSERT INTO notifications.delivery (id, key, channel, recipient, webhook_id, kind,
                items, state, emergency, due_at, give_up_at, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10)
            ON CONFLICT (key) DO NOTHING RETURNING true
        )
        SELECT true, pg_notify($12, '') FROM added
        """,
        id,
        key,
        channel,
        recipient,
        webhook_id,
        kind,
        items,
        "held" if held else "pending",
        emergency,
        at,
        give_up_at,
        WORK_CHANNEL,
    )
    return bool(inserted)


async def claim_due(
    conn: Connection, *, now: datetime, lease_until: datetime, limit: int
) -> list[asyncpg.Record]:
    """Take up to ``limit`` due deliveries: each is pushed to ``lease_until`` so that no other
    worker takes it meanwhile, and comes back by itself if this one dies while sending."""
    return await conn.fetch(
        """
        UPDATE notifications.delivery d SET due_at = $2
        FROM (
            SELECT id FROM notifications.delivery
            WHERE state = 'pending' AND due_at <= $1
            ORDER BY emergency DESC, due_at LIMIT $3 FOR UPDATE SKIP LOCKED
        ) due
        WHERE d.id = due.id
        RETURNING d.*
        """,
        now,
        lease_until,
        limit,
    )


async def record_attempt(
    conn: Connection,
    delivery_id: UUID,
    *,
    at: datetime,
    outcome: str,
    detail: str,
    duration_ms: int,
    retry_at: datetime | None,
) -> None:
    state = {"sent": "sent", "gave_up": "failed", "failed": "pending"}[outcome]
    # The delivery's new state and the attempt's row: one statement.
    await conn.execute(
        """
        WITH updated AS (
            UPDATE notifications.delivery SET attempts = attempts + 1, state = $2::text,
                due_at = coalesce($3::timestamptz, due_at),
                sent_at = CASE WHEN $2::text = 'sent' THEN $4::timestamptz END,
                last_error = CASE WHEN $2::text = 'sent' THEN NULL ELSE $5::text END
            WHERE id = $1
        )
        INSERT INTO notifications.attempt (delivery_id, at, outcome, detail, duration_ms)
        VALUES ($1, $4, $6, $5, $7)
        """,
        delivery_id,
        state,
        retry_at,
        at,
        detail,
        outcome,
        duration_ms,
    )


async def cancel(conn: Connection, delivery_id: UUID, why: str) -> None:
    await conn.execute(
        "UPDATE notifications.delivery SET state = 'cancelled', last_error = $2 WHERE id = $1",
        delivery_id,
        why,
    )


async def held(conn: Connection, *, before: datetime) -> list[asyncpg.Record]:
    """Deliveries waiting for a digest, made before ``before``, locked for the digest."""
    return await conn.fetch(
        """
        SELECT * FROM notifications.delivery
        WHERE state = 'held' AND created_at < $1
        ORDER BY recipient, channel, created_at FOR UPDATE SKIP LOCKED
        """,
        before,
    )


async def mark_digested(conn: Connection, ids: Sequence[UUID]) -> None:
    await conn.execute(
        "UPDATE notifications.delivery SET state = 'digested' WHERE id = ANY($1)", list(ids)
    )


async def delivery_log(
    conn: Connection, *, limit: int, before: datetime | None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT d.id, d.channel, d.recipient, d.kind, d.state, d.attempts, d.emergency,
               d.created_at, d.sent_at, d.due_at, d.last_error,
               coalesce(json_agg(json_build_object('at', a.at, 'outcome', a.outcome,
                   'detail', a.detail, 'duration_ms', a.duration_ms) ORDER BY a.seq)
                   FILTER (WHERE a.seq IS NOT NULL), '[]') AS attempt_log
        FROM notifications.delivery d LEFT JOIN notifications.attempt a ON a.delivery_id = d.id
        WHERE ($2::timestamptz IS NULL OR d.created_at < $2)
        GROUP BY d.id ORDER BY d.created_at DESC, d.id DESC LIMIT $1
        """,
        limit,
        before,
    )
    return [dict(r.items()) for r in rows]


# --- the organisation's own record ----------------------------------------------------------


async def organisation_seen(conn: Connection, org_id: str) -> OrganisationSeen | None:
    row = await conn.fetchrow(
        "SELECT * FROM notifications.organisation_seen WHERE org_id = $1 FOR UPDATE", org_id
    )
    if row is None:
        return None
    return OrganisationSeen(row["version"], row["status"], frozenset(row["key_ids"]))


async def save_organisation_seen(conn: Connection, org_id: str, seen: OrganisationSeen) -> None:
    await conn.execute(
        """
        INSERT INTO notifications.organisation_seen (org_id, version, status, key_ids)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (org_id) DO UPDATE SET version = EXCLUDED.version, status = EXCLUDED.status,
            key_ids = EXCLUDED.key_ids
        WHERE organisation_seen.version < EXCLUDED.version
        """,
        org_id,
        seen.version,
        seen.status,
        sorted(seen.key_ids),
    )


async def next_due(conn: Connection) -> datetime | None:
    found: datetime | None = await conn.fetchval(
        "SELECT min(due_at) FROM notifications.delivery WHERE state = 'pending'"
    )
    return found


async def wake(conn: Connection, channel: str, payload: str = "") -> None:
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
