"""Audit queries on schema ``audit``: appending to the chain under one lock, reading it in
order, checkpoints, the hub's network log and the facts its figures are made of."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.audit.domain import ENTRY_FIELDS, Anchor, Draft, Entry, chain
from shared import db
from shared.db import Connection, Pool

SCHEMA = "audit"
WRITER_ROLE = "relais_audit_writer"
# One chain per node: every writer takes this transaction-level lock before reading the head.
CHAIN_LOCK = 0x72656C6169735F61  # "relais_a"
ENTRY_COLUMNS = ", ".join(ENTRY_FIELDS).replace("event_id", "event_id::text")


async def create_writer_pool(dsn: str, *, max_size: int = 5) -> Pool:
    """A pool whose connections act as the audit role: insert and read, nothing else."""

    async def init(conn: Connection) -> None:
        await db.init_connection(conn, "audit")

    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=init,
        command_timeout=60,
        # A startup setting, not a SET: it holds for the connection's life.
        server_settings={"role": WRITER_ROLE},
        # No clean-up round trip at each release (``db.keep_session`` says why): the chain's
        # lock is a transaction's (``pg_advisory_xact_lock``), released at its end.
        reset=db.keep_session,
    )
    assert pool is not None
    return pool


# --- the chain ------------------------------------------------------------------------------


async def anchor(conn: Connection) -> Anchor:
    """Where this node's chain starts: the latest retention cut, or the beginning."""
    row = await conn.fetchrow(
        "SELECT last_seq, last_hash FROM audit.cut ORDER BY last_seq DESC LIMIT 1"
    )
    return Anchor() if row is None else Anchor(row["last_seq"], row["last_hash"])


async def head(conn: Connection) -> Anchor:
    """The last record's number and hash (the anchor if there is none)."""
    row = await conn.fetchrow("SELECT seq, hash FROM audit.entry ORDER BY seq DESC LIMIT 1")
    if row is None:
        return await anchor(conn)
    return Anchor(row["seq"], row["hash"])


async def append(conn: Connection, drafts: Sequence[Draft]) -> list[Entry]:
    """Chain ``drafts`` at the end, in ``conn``'s transaction; a draft whose event was already
    chained is skipped (deliveries repeat). Concurrent writers queue on the chain's lock, held
    until the transaction ends: the chain has one head at a time."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK)
    row = await conn.fetchrow(
        "SELECT h.seq, h.hash, (SELECT array_agg(event_id::text) FROM audit.entry"
        "  WHERE event_id = ANY($1::uuid[])) AS seen"
        " FROM (SELECT seq, hash FROM audit.entry ORDER BY seq DESC LIMIT 1) AS h",
        [d.event_id for d in drafts],
    )
    if row is None:  # nothing chained yet, or everything pruned: start at the anchor
        start = await anchor(conn)
        seq, prev, seen = start.seq, start.hash, set[str]()
    else:
        seq, prev, seen = row["seq"], row["hash"], set(row["seen"] or ())
    entries: list[Entry] = []
    for draft in drafts:
        if draft.event_id in seen:
            continue
        seen.add(draft.event_id)
        seq += 1
        entry = chain(draft, seq=seq, prev_hash=prev)
        prev = entry.hash
        entries.append(entry)
    rows = [tuple(getattr(e, name) for name in ENTRY_FIELDS) for e in entries]
    if len(rows) > 50:
        await conn.copy_records_to_table(
            "entry", schema_name=SCHEMA, columns=list(ENTRY_FIELDS), records=rows
        )
    elif rows:
        await conn.executemany(
            f"INSERT INTO audit.entry ({', '.join(ENTRY_FIELDS)})"
            f" VALUES ({', '.join(f'${n}' for n in range(1, len(ENTRY_FIELDS) + 1))})",
            rows,
        )
    return entries


async def entries_from(
    conn: Connection, after_seq: int, *, chunk: int = 5000
) -> AsyncIterator[list[Entry]]:
    """Every record after ``after_seq``, in order, a chunk at a time."""
    last = after_seq
    while True:
        rows = await conn.fetch(
            f"SELECT {ENTRY_COLUMNS} FROM audit.entry WHERE seq > $1 ORDER BY seq LIMIT $2",
            last,
            chunk,
        )
        if not rows:
            return
        batch = [Entry.of(row) for row in rows]
        yield batch
        last = batch[-1].seq


async def count_after(conn: Connection, after_seq: int) -> int:
    value = await conn.fetchval("SELECT count(*) FROM audit.entry WHERE seq > $1", after_seq)
    return int(value)


async def seq_of_hash(conn: Connection, hash: str) -> int | None:
    value = await conn.fetchval("SELECT min(seq) FROM audit.entry WHERE hash = $1", hash)
    return None if value is None else int(value)


async def hashes_at(conn: Connection, seqs: Sequence[int]) -> dict[int, str]:
    rows = await conn.fetch("SELECT seq, hash FROM audit.entry WHERE seq = ANY($1)", list(seqs))
    return {r["seq"]: r["hash"] for r in rows}


async def entry_at(conn: Connection, seq: int) -> Entry | None:
    row = await conn.fetchrow(f"SELECT {ENTRY_COLUMNS} FROM audit.entry WHERE seq = $1", seq)
    return None if row is None else Entry.of(row)


# --- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str
    org: str = ""
    node_id: str = ""


async def last_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    row = await conn.fetchrow(
        "SELECT seq, hash, at, key_id, signature FROM audit.checkpoint ORDER BY seq DESC LIMIT 1"
    )
    return None if row is None else StoredCheckpoint(**dict(row.items()))


async def save_checkpoint(conn: Connection, checkpoint: StoredCheckpoint) -> None:
    await conn.execute(
        "INSERT INTO audit.checkpoint (seq, hash, at, key_id, signature)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        checkpoint.seq,
        checkpoint.hash,
        checkpoint.at,
        checkpoint.key_id,
        checkpoint.signature,
    )


async def own_checkpoints(conn: Connection) -> list[StoredCheckpoint]:
    rows = await conn.fetch(
        "SELECT seq, hash, at, key_id, signature FROM audit.checkpoint ORDER BY seq"
    )
    return [StoredCheckpoint(**dict(r.items())) for r in rows]


async def node_checkpoints(conn: Connection, org: str | None) -> list[StoredCheckpoint]:
    rows = await conn.fetch(
        "SELECT org, node_id, seq, hash, at, key_id, signature FROM audit.node_checkpoint"
        " WHERE $1::text IS NULL OR org = $1 ORDER BY org, seq",
        org,
    )
    return [StoredCheckpoint(**dict(r.items())) for r in rows]


async def checkpoints_of(conn: Connection, org: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT seq, hash, at FROM audit.node_checkpoint WHERE org = $1 ORDER BY seq", org
        )
    )


async def save_node_checkpoint(
    conn: Connection, checkpoint: StoredCheckpoint, event_id: str
) -> None:
    await conn.execute(
        "INSERT INTO audit.node_checkpoint"
        " (org, node_id, seq, hash, at, key_id, signature, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        checkpoint.org,
        checkpoint.node_id,
        checkpoint.seq,
        checkpoint.hash,
        checkpoint.at,
        checkpoint.key_id,
        checkpoint.signature,
        event_id,
    )


async def save_alert(conn: Connection, org: str, kind: str, detail: str, event_id: str) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO audit.alert (org, kind, detail, event_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING true",
        org,
        kind,
        detail,
        event_id,
    )
    return bool(inserted)


async def list_alerts(conn: Connection, limit: int) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT id, at, org, kind, detail FROM audit.alert ORDER BY id DESC LIMIT $1", limit
        )
    )


async def add_cut(conn: Connection, last: Anchor, archived_to: str) -> None:
    await conn.execute(
        "INSERT INTO audit.cut (last_seq, last_hash, archived_to) VALUES ($1, $2, $3)",
        last.seq,
        last.hash,
        archived_to,
    )


async def prune_to(conn: Connection, last_seq: int) -> int:
    status: str = await conn.execute("DELETE FROM audit.entry WHERE seq <= $1", last_seq)
    return int(status.split()[-1])
