"""The referrals schema: rows in, views out. Every function runs in the caller's connection
(and transaction); times come from ``referrals.clock_now()``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.referrals import attachment_store, domain
from shared.contracts.referrals import (
    Box,
    Header,
    ReferralView,
    Status,
    Urgency,
)
from shared.db import Connection

SCHEMA = "referrals"


@dataclass(frozen=True)
class Referral:
    """One referral as this node holds it."""

    header: Header
    box: Box
    status: Status
    status_at: datetime
    status_by: str
    consent_state: str
    created_by: str | None
    signature: str
    nonce: str | None
    ciphertext: str | None
    sealed_key: str | None
    refused_reason: str | None
    closed_at: datetime | None
    shredded_at: datetime | None
    updated_at: datetime
    seq: int  # this node's creation order: the lists' stable paging key
    follows: str | None = None  # the earlier referral this one was sent again from (sender)
    unread_messages: int = 0  # the other organisation's messages nobody here has read yet
    sealed_for: str | None = None  # the node's key the data key is re-sealed for (reseal.py)

    @property
    def referral_id(self) -> str:
        return self.header.referral_id

    @property
    def side(self) -> domain.Side:
        return domain.Side.SENDER if self.box is Box.OUTBOX else domain.Side.RECIPIENT

    @property
    def other_org(self) -> str:
        return self.header.to_org if self.box is Box.OUTBOX else self.header.from_org

    @property
    def step(self) -> domain.Step:
        return domain.Step(self.status, self.status_at, self.status_by)

    def view(self) -> ReferralView:
        return ReferralView(
            referral_id=self.referral_id,
            box=self.box,
            from_org=self.header.from_org,
            to_org=self.header.to_org,
            category=self.header.category,
            urgency=self.header.urgency,
            status=self.status,
            created_by=self.created_by,
            acknowledge_by=self.header.acknowledge_by,
            answer_by=self.header.answer_by,
        )


@dataclass(frozen=True)
class HistoryEntry:
    change: str
    status: Status | None
    at: datetime
    by_org: str
    by_actor: str | None
    reason: str | None
    sealed_note: str | None
    applied: bool
    link: str | None = None  # the referral this step points at (sent again as, follows)


def _referral(row: asyncpg.Record) -> Referral:
    return Referral(
        header=Header.model_validate(row["header"]),
        box=Box(row["box"]),
        status=Status(row["status"]),
        status_at=row["status_at"],
        status_by=row["status_by"],
        consent_state=row["consent_state"],
        created_by=row["created_by"],
        signature=row["signature"],
        nonce=row["nonce"],
        ciphertext=row["ciphertext"],
        sealed_key=row["sealed_key"],
        refused_reason=row["refused_reason"],
        closed_at=row["closed_at"],
        shredded_at=row["shredded_at"],
        updated_at=row["updated_at"],
        seq=row["seq"],
        follows=_id(row["follows"]),
        unread_messages=row["unread_messages"],
        sealed_for=row["sealed_for"],
    )


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


async def now(conn: Connection) -> datetime:
    value: datetime = await conn.fetchval("SELECT referrals.clock_now()")
    return value


@dataclass(frozen=True)
class Receipt:
    """Where an arriving envelope stands, read in one round trip."""

    first_time: bool  # its event was not processed before (now it is, in this transaction)
    known: bool  # its referral is already here (the same envelope under another event id)
    now: datetime


async def receipt(conn: Connection, consumer: str, event_id: str, referral_id: str) -> Receipt:
    """``processed.first_time``, ``get(...) is not None`` and ``now`` in one statement."""
    row = await conn.fetchrow(
        "WITH first AS (INSERT INTO referrals.processed (consumer, event_id) VALUES ($1, $2)"
        "  ON CONFLICT DO NOTHING RETURNING true)"
        " SELECT EXISTS (SELECT FROM first) AS first_time,"
        "  EXISTS (SELECT FROM referrals.referrals WHERE referral_id = $3) AS known,"
        "  referrals.clock_now() AS now",
        consumer,
        event_id,
        referral_id,
    )
    assert row is not None
    return Receipt(row["first_time"], row["known"], row["now"])


async def claim(
    conn: Connection, consumer: str, event_id: str, referral_id: str
) -> tuple[bool, Referral | None]:
    """``processed.first_time`` and ``get(..., for_update=True)`` in one statement: whether
    the event is new to ``consumer`` (now recorded, in this transaction) and the referral it is
    about, locked (also for an event seen before: a repeat, rare, and harmless)."""
    row = await conn.fetchrow(
        "WITH first AS (INSERT INTO referrals.processed (consumer, event_id) VALUES ($1, $2)"
        "  ON CONFLICT DO NOTHING RETURNING true),"
        " locked AS (SELECT * FROM referrals.referrals WHERE referral_id = $3 FOR UPDATE)"
        " SELECT EXISTS (SELECT FROM first) AS first_time, locked.*"
        " FROM (SELECT) AS one LEFT JOIN locked ON true",
        consumer,
        event_id,
        referral_id,
    )
    assert row is not None
    return row["first_time"], None if row["referral_id"] is None else _referral(row)


async def insert(
    conn: Connection,
    *,
    header: Header,
    box: Box,
    status: Status,
    status_at: datetime,
    status_by: str,
    created_by: str | None,
    signature: str,
    nonce: str,
    ciphertext: str,
    sealed_key: str,
    follows: str | None = None,
    history: Sequence[domain.Step] = (),
    history_by: str | None = None,
    alarms: Sequence[domain.Alarm] = (),
) -> Referral:
    """The new row, as ``get`` would read it in the same transaction, with its first
    ``history`` entries (in this order; ``history_by``: the person of this node who made them)
    and its ``alarms``: one statement for the three tables."""
    row = await conn.fetchrow(
        """
        WITH added AS (
            INSERT INTO referrals.referrals (
                referral_id, box, from_org, to_org, category, urgency, region, legal_basis,
                consent, consent_state, status, status_at, status_by, created_by, created_at,
                acknowledge_by, answer_by, header, signature, nonce, ciphertext, sealed_key,
                updated_at, follows)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18, $19, $20, $21, $22, $12, $23)
            RETURNING *
        ), logged AS (
            INSERT INTO referrals.history (referral_id, change, status, at, by_org, by_actor)
            SELECT $1, h.status, h.status, h.at, h.by_org, $24::text
            FROM unnest($25::text[], $26::timestamptz[], $27::text[]) WITH ORDINALITY
                AS h (status, at, by_org, n)
            ORDER BY h.n
        ), alarmed AS (
            INSERT INTO referrals.alarms (referral_id, timer, deadline, due_at, fires_at)
            SELECT $1, * FROM unnest($28::text[], $29::text[], $30::timestamptz[],
                                     $31::timestamptz[])
            ON CONFLICT DO NOTHING
        )
        SELECT * FROM added
        """,
        header.referral_id,
        box.value,
        header.from_org,
        header.to_org,
        header.category,
        header.urgency.value,
        header.region,
        header.legal_basis.value,
        None if header.consent is None else header.consent.model_dump(mode="json"),
        "not_applicable" if header.consent is None else "given",
        status.value,
        status_at,
        status_by,
        created_by,
        header.created_at,
        header.acknowledge_by,
        header.answer_by,
        header.model_dump(mode="json"),
        signature,
        nonce,
        ciphertext,
        sealed_key,
        follows,
        history_by,
        [step.status.value for step in history],
        [step.at for step in history],
        [step.by_org for step in history],
        [a.timer.value for a in alarms],
        [a.deadline.value for a in alarms],
        [a.due_at for a in alarms],
        [a.fires_at for a in alarms],
    )
    assert row is not None
    return _referral(row)


async def get(conn: Connection, referral_id: str, *, for_update: bool = False) -> Referral | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT * FROM referrals.referrals WHERE referral_id = $1{lock}", referral_id
    )
    return None if row is None else _referral(row)


async def set_status(
    conn: Connection,
    referral_id: str,
    step: domain.Step,
    *,
    by_actor: str | None = None,
    reason: str | None = None,
    sealed_note: str | None = None,
) -> Referral:
    """The row after the step, as ``get`` would read it in the same transaction, and the step
    in the referral's history: one statement for both."""
    closed = step.status in domain.TERMINAL
    row = await conn.fetchrow(
        """
        WITH updated AS (
            UPDATE referrals.referrals
            SET status = $2, status_at = $3, status_by = $4, updated_at = referrals.clock_now(),
                closed_at = CASE WHEN $5 THEN coalesce(closed_at, referrals.clock_now()) END
            WHERE referral_id = $1
            RETURNING *
        ), logged AS (
            INSERT INTO referrals.history (referral_id, change, status, at, by_org, by_actor,
                                           reason, sealed_note)
            SELECT referral_id, $2, $2, $3, $4, $6, $7, $8 FROM updated
        )
        SELECT * FROM updated
        """,
        referral_id,
        step.status.value,
        step.at,
        step.by_org,
        closed,
        by_actor,
        reason,
        sealed_note,
    )
    if row is None:
        raise LookupError(f"no referral {referral_id}")
    return _referral(row)


async def add_history(
    conn: Connection,
    referral_id: str,
    *,
    change: str,
    status: Status | None,
    at: datetime,
    by_org: str,
    by_actor: str | None = None,
    reason: str | None = None,
    sealed_note: str | None = None,
    applied: bool = True,
    link: str | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO referrals.history (referral_id, change, status, at, by_org, by_actor,
                                       reason, sealed_note, applied, link)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        """,
        referral_id,
        change,
        None if status is None else status.value,
        at,
        by_org,
        by_actor,
        reason,
        sealed_note,
        applied,
        link,
    )


async def history(conn: Connection, referral_id: str) -> list[HistoryEntry]:
    rows = await conn.fetch(
        "SELECT * FROM referrals.history WHERE referral_id = $1 ORDER BY at, id", referral_id
    )
    return [
        HistoryEntry(
            change=r["change"],
            status=None if r["status"] is None else Status(r["status"]),
            at=r["at"],
            by_org=r["by_org"],
            by_actor=r["by_actor"],
            reason=r["reason"],
            sealed_note=r["sealed_note"],
            applied=r["applied"],
            link=_id(r["link"]),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Filters:
    box: Box | None = None
    status: Status | None = None
    urgency: Urgency | None = None
    category: str | None = None
    limit: int = 50
    # Keyset: the seq of the last item of the previous page. seq is the creation order and
    # never changes, so a list being paged while referrals move loses and repeats nothing.
    before: int | None = None


async def search(conn: Connection, filters: Filters) -> list[Referral]:
    clauses, args = [], []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column, value in (
        ("box", filters.box),
        ("status", filters.status),
        ("urgency", filters.urgency),
        ("category", filters.category),
    ):
        if value is not None:
            clauses.append(f"{column} = {arg(str(value))}")
    if filters.before is not None:
        clauses.append(f"seq < {arg(filters.before)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await conn.fetch(
        f"SELECT * FROM referrals.referrals {where} ORDER BY seq DESC LIMIT {arg(filters.limit)}",
        *args,
    )
    return [_referral(r) for r in rows]


async def touch(conn: Connection, referral_id: str, **columns: Any) -> None:
    """Set some of a referral's columns (names from this module only, never from input)."""
    names = list(columns)
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    await conn.execute(
        f"UPDATE referrals.referrals SET {sets}, updated_at = referrals.clock_now()"
        " WHERE referral_id = $1",
        referral_id,
        *columns.values(),
    )


# -- idempotency ------------------------------------------------------------------------------


async def remembered(conn: Connection, caller: str, key: str) -> tuple[str, str] | None:
    """(referral id, request digest) a caller's earlier create with this key made."""
    row = await conn.fetchrow(
        "SELECT referral_id, request FROM referrals.idempotency WHERE caller = $1 AND key = $2",
        caller,
        key,
    )
    return None if row is None else (str(row["referral_id"]), row["request"])


async def remember(conn: Connection, caller: str, key: str, request: str, referral_id: str) -> None:
    await conn.execute(
        "INSERT INTO referrals.idempotency (caller, key, request, referral_id)"
        " VALUES ($1, $2, $3, $4)",
        caller,
        key,
        request,
        referral_id,
    )


# -- alarms -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    referral_id: str
    timer: domain.Timer
    deadline: domain.Deadline
    due_at: datetime


async def take_due_alarms(conn: Connection, limit: int = 100) -> list[Due]:
    """Alarms whose time has come, marked fired in the caller's transaction (once only)."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT referral_id, timer, deadline FROM referrals.alarms
            WHERE fired_at IS NULL AND fires_at <= referrals.clock_now()
            ORDER BY fires_at LIMIT $1 FOR UPDATE SKIP LOCKED
        )
        UPDATE referrals.alarms a SET fired_at = referrals.clock_now() FROM due
        WHERE a.referral_id = due.referral_id AND a.timer = due.timer
          AND a.deadline = due.deadline
        RETURNING a.referral_id, a.timer, a.deadline, a.due_at, a.fires_at
        """,
        limit,
    )
    rows = sorted(rows, key=lambda r: r["fires_at"])
    return [
        Due(
            str(r["referral_id"]),
            domain.Timer(r["timer"]),
            domain.Deadline(r["deadline"]),
            r["due_at"],
        )
        for r in rows
    ]


# -- refusals and retention -------------------------------------------------------------------


async def refusal_of(conn: Connection, event_id: str) -> str | None:
    reason: str | None = await conn.fetchval(
        "SELECT reason FROM referrals.refused WHERE event_id = $1", event_id
    )
    return reason


async def was_refused(conn: Connection, referral_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM referrals.refused WHERE referral_id = $1 LIMIT 1", referral_id
    )
    return bool(found)


async def record_refusal(
    conn: Connection, event_id: str, referral_id: str, from_org: str, reason: str
) -> None:
    await conn.execute(
        "INSERT INTO referrals.refused (event_id, referral_id, from_org, reason, at)"
        " VALUES ($1, $2, $3, $4, referrals.clock_now()) ON CONFLICT DO NOTHING",
        event_id,
        referral_id,
        from_org,
        reason,
    )


async def lapsed_consents(conn: Connection) -> list[str]:
    """Received referrals whose consent ran out while this node still holds the data key."""
    rows = await conn.fetch(
        """
        SELECT referral_id FROM referrals.referrals
        WHERE box = 'inbox' AND consent_state = 'given' AND sealed_key IS NOT NULL
          AND (consent->>'expires_at')::timestamptz <= referrals.clock_now()
        FOR UPDATE SKIP LOCKED
        """
    )
    return [str(r["referral_id"]) for r in rows]


async def forget_notes(conn: Connection, referral_id: str) -> None:
    """The notes, the messages and the files of a referral whose data key this node destroyed."""
    await conn.execute(
        "UPDATE referrals.history SET sealed_note = NULL WHERE referral_id = $1", referral_id
    )
    await conn.execute(
        "UPDATE referrals.messages SET sealed_text = NULL WHERE referral_id = $1", referral_id
    )
    await attachment_store.erase(conn, [referral_id])  # the files' keys and chunks go too


async def shred_closed(conn: Connection, older_than_days: float) -> list[str]:
    """Erase the payload of referrals closed longer ago than the retention period; their
    metadata stays. Returns the ids erased."""
    rows = await conn.fetch(
        """
        UPDATE referrals.referrals
        SET sealed_key = NULL, ciphertext = NULL, nonce = NULL,
            shredded_at = referrals.clock_now(), updated_at = referrals.clock_now()
        WHERE shredded_at IS NULL AND closed_at IS NOT NULL
          AND closed_at < referrals.clock_now() - make_interval(secs => $1 * 86400)
        RETURNING referral_id
        """,
        older_than_days,
    )
    ids = [str(r["referral_id"]) for r in rows]
    if ids:
        await conn.execute(
            "UPDATE referrals.history SET sealed_note = NULL WHERE referral_id = ANY($1::uuid[])",
            ids,
        )
        await conn.execute(
            "UPDATE referrals.messages SET sealed_text = NULL WHERE referral_id = ANY($1::uuid[])",
            ids,
        )
        await attachment_store.erase(conn, ids)
    return ids


# -- the conversation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    message_id: str
    referral_id: str
    by_org: str
    by_role: str
    by_actor: str | None
    at: datetime
    sealed_text: str | None
    seq: int
    refused_reason: str | None = None  # the other node refused it (the writer's copy only)


async def add_message(
    conn: Connection,
    *,
    message_id: str,
    referral_id: str,
    by_org: str,
    by_role: str,
    by_actor: str | None,
    at: datetime,
    sealed_text: str | None,
    sender_key_id: str,
    signature: str,
    unread: bool,
) -> bool:
    """Keep a message (once: a message id seen before adds nothing); ``unread`` counts it on
    its referral. Whether it was new."""
    added = await conn.fetchval(
        """
        INSERT INTO referrals.messages (message_id, referral_id, by_org, by_role, by_actor, at,
                                        sealed_text, sender_key_id, signature)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (message_id) DO NOTHING RETURNING true
        """,
        message_id,
        referral_id,
        by_org,
        by_role,
        by_actor,
        at,
        sealed_text,
        sender_key_id,
        signature,
    )
    if added and unread:
        await conn.execute(
            "UPDATE referrals.referrals SET unread_messages = unread_messages + 1"
            " WHERE referral_id = $1",
            referral_id,
        )
    return bool(added)


async def messages(conn: Connection, referral_id: str) -> list[Message]:
    rows = await conn.fetch(
        "SELECT * FROM referrals.messages WHERE referral_id = $1 ORDER BY at, seq", referral_id
    )
    return [
        Message(
            message_id=str(r["message_id"]),
            referral_id=str(r["referral_id"]),
            by_org=r["by_org"],
            by_role=r["by_role"],
            by_actor=r["by_actor"],
            at=r["at"],
            sealed_text=r["sealed_text"],
            seq=r["seq"],
            refused_reason=r["refused_reason"],
        )
        for r in rows
    ]


async def refuse_message(
    conn: Connection, referral_id: str, message_id: str, by_org: str, reason: str
) -> bool | None:
    """The other node refused this node's message: its copy says why. ``None`` when no such
    message of ``by_org`` is on that referral; whether it changed (a refusal told twice does
    not)."""
    row = await conn.fetchrow(
        "SELECT refused_reason FROM referrals.messages"
        " WHERE message_id = $1 AND referral_id = $2 AND by_org = $3 FOR UPDATE",
        message_id,
        referral_id,
        by_org,
    )
    if row is None:
        return None
    if row["refused_reason"] is not None:
        return False
    await conn.execute(
        "UPDATE referrals.messages SET refused_reason = $2 WHERE message_id = $1",
        message_id,
        reason,
    )
    return True


async def mark_read(conn: Connection, referral_id: str) -> int:
    """A person of this organisation read the thread: nothing is unread any more. How many
    were."""
    before: int | None = await conn.fetchval(
        "SELECT unread_messages FROM referrals.referrals WHERE referral_id = $1 FOR UPDATE",
        referral_id,
    )
    if before:
        await conn.execute(
            "UPDATE referrals.referrals SET unread_messages = 0 WHERE referral_id = $1",
            referral_id,
        )
    return before or 0
