"""asyncpg queries of a referral's documents: the files, their sealed chunks, and their
erasure (the file key and the chunks destroyed together)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.db import Connection


@dataclass(frozen=True)
class Attachment:
    attachment_id: str
    referral_id: str
    by_org: str
    by_role: str
    by_actor: str | None
    at: datetime
    size: int
    chunks: int
    stream_header: bytes | None
    sealed_meta: str | None
    sealed_key: str | None
    key_id: str | None
    sender_key_id: str
    signature: str
    state: str
    refused_reason: str | None
    checked_at: datetime | None


def _attachment(row: asyncpg.Record) -> Attachment:
    return Attachment(
        attachment_id=str(row["attachment_id"]),
        referral_id=str(row["referral_id"]),
        by_org=row["by_org"],
        by_role=row["by_role"],
        by_actor=row["by_actor"],
        at=row["at"],
        size=row["size"],
        chunks=row["chunks"],
        stream_header=row["stream_header"],
        sealed_meta=row["sealed_meta"],
        sealed_key=row["sealed_key"],
        key_id=row["key_id"],
        sender_key_id=row["sender_key_id"],
        signature=row["signature"],
        state=row["state"],
        refused_reason=row["refused_reason"],
        checked_at=row["checked_at"],
    )


async def add(
    conn: Connection,
    *,
    attachment_id: str,
    referral_id: str,
    by_org: str,
    by_role: str,
    by_actor: str | None,
    at: datetime,
    size: int,
    chunks: int,
    stream_header: bytes | None,
    sealed_meta: str | None,
    sealed_key: str | None,
    key_id: str | None,
    sender_key_id: str,
    signature: str,
    state: str,
) -> bool:
    """Keep a file's record once (an id seen before adds nothing); whether it was new."""
    added = await conn.fetchval(
        """
        INSERT INTO referrals.attachments (attachment_id, referral_id, by_org, by_role, by_actor,
            at, size, chunks, stream_header, sealed_meta, sealed_key, key_id, sender_key_id,
            signature, state)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        ON CONFLICT (attachment_id) DO NOTHING RETURNING true
        """,
        attachment_id,
        referral_id,
        by_org,
        by_role,
        by_actor,
        at,
        size,
        chunks,
        stream_header,
        sealed_meta,
        sealed_key,
        key_id,
        sender_key_id,
        signature,
        state,
    )
    return bool(added)


async def add_chunks(
    conn: Connection, attachment_id: str, referral_id: str, chunks: list[tuple[int, bytes]]
) -> int:
    """Keep sealed chunks, each once; how many were new."""
    added = 0
    for index, sealed in chunks:
        if await conn.fetchval(
            """
            INSERT INTO referrals.attachment_chunks (attachment_id, chunk_index, referral_id,
                                                     sealed)
            VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true
            """,
            attachment_id,
            index,
            referral_id,
            sealed,
        ):
            added += 1
    return added


async def get(
    conn: Connection, attachment_id: str, *, for_update: bool = False
) -> Attachment | None:
    row = await conn.fetchrow(
        "SELECT * FROM referrals.attachments WHERE attachment_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        attachment_id,
    )
    return _attachment(row) if row is not None else None


async def of_referral(conn: Connection, referral_id: str) -> list[Attachment]:
    rows = await conn.fetch(
        "SELECT * FROM referrals.attachments WHERE referral_id = $1 ORDER BY at, seq", referral_id
    )
    return [_attachment(r) for r in rows]


async def chunk_count(conn: Connection, attachment_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM referrals.attachment_chunks WHERE attachment_id = $1",
        attachment_id,
    )
    return count


async def sealed_chunks(conn: Connection, attachment_id: str) -> list[bytes]:
    rows = await conn.fetch(
        "SELECT sealed FROM referrals.attachment_chunks WHERE attachment_id = $1"
        " ORDER BY chunk_index",
        attachment_id,
    )
    return [bytes(r["sealed"]) for r in rows]


async def set_state(
    conn: Connection,
    attachment_id: str,
    state: str,
    *,
    reason: str | None = None,
    at: datetime | None = None,
) -> None:
    await conn.execute(
        "UPDATE referrals.attachments SET state = $2, refused_reason = $3, checked_at = $4"
        " WHERE attachment_id = $1",
        attachment_id,
        state,
        reason,
        at,
    )


async def park_refused(conn: Connection, attachment_id: str, reason: str, at: datetime) -> None:
    """A file that did not verify: nothing of it is kept that could be offered."""
    await conn.execute(
        "DELETE FROM referrals.attachment_chunks WHERE attachment_id = $1", attachment_id
    )
    await conn.execute(
        """
        UPDATE referrals.attachments
        SET state = 'refused', refused_reason = $2, checked_at = $3,
            sealed_key = NULL, sealed_meta = NULL, stream_header = NULL
        WHERE attachment_id = $1
        """,
        attachment_id,
        reason,
        at,
    )


async def erase(conn: Connection, referral_ids: list[str]) -> None:
    """Destroy the file keys of these referrals' files, and their sealed chunks."""
    if not referral_ids:
        return
    await conn.execute(
        "DELETE FROM referrals.attachment_chunks WHERE referral_id = ANY($1::uuid[])",
        referral_ids,
    )
    await conn.execute(
        """
        UPDATE referrals.attachments
        SET sealed_key = NULL, sealed_meta = NULL, stream_header = NULL, state = 'erased',
            checked_at = referrals.clock_now()
        WHERE referral_id = ANY($1::uuid[]) AND state <> 'erased'
        """,
        referral_ids,
    )
