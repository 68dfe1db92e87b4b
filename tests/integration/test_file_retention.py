"""Retention reaches a referral's files, on a real database: once the referral closed longer
ago than the retention period, each file's key and its sealed chunks are destroyed with the
payload's key, its record staying (who attached what size, when) with the state ``erased``;
a referral still within the period keeps its files."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.referrals import attachment_store, store
from shared.db import Pool, create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


async def closed_referral_with_a_file(pool: Pool, closed_days_ago: float) -> tuple[str, str]:
    referral_id, attachment_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    closed = now - timedelta(days=closed_days_ago)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO referrals.referrals (referral_id, box, from_org, to_org, category,
                urgency, legal_basis, consent_state, status, status_at, status_by, created_at,
                acknowledge_by, answer_by, header, signature, sealed_key, closed_at, updated_at)
            VALUES ($1, 'inbox', 'sanad', 'amal', 'health', 'routine', 'consent', 'given',
                'completed', $2, 'amal', $2, $2, $2, $3, 'sig', 'key', $2, $2)
            """,
            referral_id,
            closed,
            {},
        )
        await attachment_store.add(
            conn,
            attachment_id=attachment_id,
            referral_id=referral_id,
            by_org="sanad",
            by_role="caseworker",
            by_actor=None,
            at=closed,
            size=3,
            chunks=2,
            stream_header=b"header",
            sealed_meta="meta",
            sealed_key="file key",
            key_id="k",
            sender_key_id="s",
            signature="sig",
            state="arrived",
        )
        await attachment_store.add_chunks(
            conn, attachment_id, referral_id, [(0, b"sealed 0"), (1, b"sealed 1")]
        )
    return referral_id, attachment_id


async def test_retention_destroys_the_files_keys_and_chunks_with_the_payloads(
    pool: Pool,
) -> None:
    old, old_file = await closed_referral_with_a_file(pool, closed_days_ago=200)
    recent, recent_file = await closed_referral_with_a_file(pool, closed_days_ago=10)
    async with pool.acquire() as conn, conn.transaction():
        erased = await store.shred_closed(conn, 180)
    assert old in erased and recent not in erased
    async with pool.acquire() as conn:
        gone = await attachment_store.get(conn, old_file)
        kept = await attachment_store.get(conn, recent_file)
        assert gone is not None and kept is not None
        assert (gone.state, gone.sealed_key, gone.sealed_meta, gone.stream_header) == (
            "erased",
            None,
            None,
            None,
        )
        assert (gone.size, gone.by_org) == (3, "sanad")  # the metadata stays
        assert await attachment_store.chunk_count(conn, old_file) == 0
        assert (kept.state, kept.sealed_key) == ("arrived", "file key")
        assert await attachment_store.chunk_count(conn, recent_file) == 2


async def test_a_chunk_seen_twice_is_kept_once(pool: Pool) -> None:
    referral_id, attachment_id = await closed_referral_with_a_file(pool, closed_days_ago=1)
    async with pool.acquire() as conn:
        again = await attachment_store.add_chunks(
            conn, attachment_id, referral_id, [(1, b"sealed 1"), (2, b"sealed 2")]
        )
        assert again == 1
        assert await attachment_store.sealed_chunks(conn, attachment_id) == [
            b"sealed 0",
            b"sealed 1",
            b"sealed 2",
        ]
