"""The services' polled figures against a real database: overdue referrals by urgency on the
service's own clock, notifications failing by channel, the audit chain's unsigned head."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from services.audit import metrics as audit_metrics
from services.notifications import metrics as notification_metrics
from services.referrals import metrics as referral_metrics
from shared.db import Pool, create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def add_referral(
    pool: Pool,
    *,
    box: str,
    urgency: str,
    status: str,
    acknowledge_in: timedelta,
    answer_in: timedelta,
) -> None:
    now = datetime.now(UTC)
    closed = status in ("completed", "declined", "withdrawn", "expired", "closed_unresolved")
    await pool.execute(
        """
        INSERT INTO referrals.referrals (referral_id, box, from_org, to_org, category, urgency,
            legal_basis, consent_state, status, status_at, status_by, created_at,
            acknowledge_by, answer_by, header, signature, sealed_key, closed_at, updated_at)
        VALUES ($1, $2, 'sanad', 'amal', 'health', $3, 'consent', 'not_applicable', $4, $5,
            'sanad', $5, $6, $7, $8, 'sig', 'key', $9, $5)
        """,
        uuid.uuid4(),
        box,
        urgency,
        status,
        now - timedelta(days=3),
        now + acknowledge_in,
        now + answer_in,
        {},
        now if closed else None,
    )


async def test_overdue_referrals_are_counted_by_box_urgency_and_deadline(pool: Pool) -> None:
    late, soon = timedelta(hours=-1), timedelta(hours=5)
    await add_referral(
        pool,
        box="inbox",
        urgency="emergency",
        status="received",
        acknowledge_in=late,
        answer_in=soon,
    )
    await add_referral(
        pool, box="inbox", urgency="emergency", status="sent", acknowledge_in=late, answer_in=late
    )
    # Accepted: acknowledged, but the answer is still owed and late.
    await add_referral(
        pool,
        box="outbox",
        urgency="routine",
        status="accepted",
        acknowledge_in=late,
        answer_in=late,
    )
    # Neither late nor open: not counted.
    await add_referral(
        pool,
        box="inbox",
        urgency="priority",
        status="received",
        acknowledge_in=soon,
        answer_in=soon,
    )
    await add_referral(
        pool,
        box="inbox",
        urgency="priority",
        status="declined",
        acknowledge_in=late,
        answer_in=late,
    )
    await referral_metrics.overdue(pool)
    overdue = "relais_referrals_overdue"
    assert sample(overdue, box="inbox", urgency="emergency", deadline="acknowledge") == 2
    assert sample(overdue, box="inbox", urgency="emergency", deadline="answer") == 1
    assert sample(overdue, box="outbox", urgency="routine", deadline="acknowledge") == 0
    assert sample(overdue, box="outbox", urgency="routine", deadline="answer") == 1
    assert sample(overdue, box="inbox", urgency="priority", deadline="acknowledge") == 0
    assert sample(overdue, box="inbox", urgency="priority", deadline="answer") == 0

    # On the service's clock: a day later, the priority one is late too.
    await pool.execute("UPDATE referrals.clock SET skew = interval '1 day'")
    await referral_metrics.overdue(pool)
    assert sample(overdue, box="inbox", urgency="priority", deadline="acknowledge") == 1


async def add_delivery(
    pool: Pool, *, channel: str, state: str, attempts: int, due: timedelta
) -> None:
    now = datetime.now(UTC)
    webhook = None
    if channel == "webhook":
        webhook = uuid.uuid4()
        await pool.execute(
            "INSERT INTO notifications.webhook (id, url, secret, created_by)"
            " VALUES ($1, 'https://example.org/hook', 's', 'admin')",
            webhook,
        )
    await pool.execute(
        """
        INSERT INTO notifications.delivery (id, key, channel, recipient, webhook_id, kind, items,
            state, attempts, due_at, give_up_at, created_at)
        VALUES ($1, $2, $3, 'amina', $4, 'referral_received', '[]', $5, $6, $7, $8, $9)
        """,
        uuid.uuid4(),
        uuid.uuid4().hex,
        channel,
        webhook,
        state,
        attempts,
        now + due,
        now + timedelta(days=1),
        now - timedelta(hours=1),
    )


async def test_failing_notifications_are_counted_by_channel(pool: Pool) -> None:
    await add_delivery(pool, channel="email", state="pending", attempts=2, due=timedelta(minutes=5))
    await add_delivery(pool, channel="email", state="pending", attempts=0, due=timedelta(0))
    await add_delivery(pool, channel="sms", state="failed", attempts=6, due=timedelta(0))
    await add_delivery(pool, channel="webhook", state="sent", attempts=1, due=timedelta(0))
    await add_delivery(
        pool, channel="webhook", state="pending", attempts=0, due=timedelta(minutes=-10)
    )
    await pool.execute(
        "UPDATE notifications.webhook SET enabled = false, disabled_at = now(),"
        " disabled_reason = 'test' WHERE id = (SELECT min(id::text)::uuid FROM"
        " notifications.webhook)"
    )
    await notification_metrics.deliveries(pool)
    assert sample("relais_notification_deliveries_retrying", channel="email") == 1
    assert sample("relais_notification_deliveries_retrying", channel="sms") == 0
    assert sample("relais_notification_deliveries_failed", channel="sms") == 1
    assert sample("relais_notification_deliveries_failed", channel="email") == 0
    assert sample("relais_notification_webhooks_disabled") == 1
    waited = sample("relais_notification_oldest_due_seconds")
    assert waited is not None and 590 <= waited <= 700


async def add_entry(pool: Pool, seq: int, at: datetime) -> None:
    await pool.execute(
        """
        INSERT INTO audit.entry (seq, at, service, actor_org, actor, action, object, digest,
            outcome, event_id, prev_hash, hash)
        VALUES ($1, $2, 'referrals', 'amal', 'amina', 'read', 'r', 'd', 'ok', $3, 'p', 'h')
        """,
        seq,
        at,
        uuid.uuid4(),
    )


async def test_the_audit_chains_unsigned_head_and_its_age(pool: Pool) -> None:
    now = datetime.now(UTC)
    await audit_metrics.checkpoints(pool)
    assert sample("relais_audit_unsigned_records") == 0
    assert sample("relais_audit_checkpoint_age_seconds") == 0
    assert sample("relais_audit_last_checkpoint_timestamp_seconds") == 0

    for seq, minutes_ago in ((1, 30), (2, 20), (3, 10)):
        await add_entry(pool, seq, now - timedelta(minutes=minutes_ago))
    await audit_metrics.checkpoints(pool)
    assert sample("relais_audit_unsigned_records") == 3
    age = sample("relais_audit_checkpoint_age_seconds")
    assert age is not None and 30 * 60 <= age < 31 * 60

    signed_at = now - timedelta(minutes=15)
    await pool.execute(
        "INSERT INTO audit.checkpoint (seq, hash, at, key_id, signature)"
        " VALUES (2, 'h', $1, 'k', 's')",
        signed_at,
    )
    await audit_metrics.checkpoints(pool)
    assert sample("relais_audit_unsigned_records") == 1
    age = sample("relais_audit_checkpoint_age_seconds")
    assert age is not None and 10 * 60 <= age < 11 * 60
    assert sample("relais_audit_last_checkpoint_timestamp_seconds") == pytest.approx(
        signed_at.timestamp(), abs=1
    )
