"""What an operator does with a dead letter after a fault: look, hand it to its consumer again,
or set it aside with a reason.

A dead letter is JetStream's notice (advisory) in the node's ``DEADLETTER`` stream; its ``id``
is the notice's sequence there. The message itself stays in its own stream (``INBOX``,
``LOCAL``, on the hub ``ROUTER``), where the notice names it.

**Redelivery runs the consumer's own handler** on the message read back from its stream, in
the node process that runs the consumer (``Bus.subscriptions``). Republishing the message
instead would reach every consumer of the subject again (and, from ``OUTBOX``, the network),
and could not reach ``INBOX`` at all (it has no subjects: it copies the hub's ``TO_<org>``).
The handler is the one place that knows whether the event was applied: a handler that failed
rolled its transaction back, ``processed`` row included, so the event is applied now; one that
is handed an event it already applied finds its ``processed`` row and does nothing. A handler
that fails again leaves the letter open, with the attempt counted and its reason kept.

What was done with each letter (``auth.dead_letters``) is written in the same transaction as
its record in the node's audit chain (through the auth outbox, as account actions are), under
an advisory lock per letter so that two administrators clicking together do not both act.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from nats.js.errors import NotFoundError

from shared import audit_trail, telemetry
from shared.audit_trail import Actor
from shared.bus import Bus, DeadLetter, Delivery, Subscription
from shared.contracts.audit import Outcome
from shared.db import Connection, Pool
from shared.errors import Conflict, Invalid, NotFound
from shared.events import CloudEvent, parse_payload

log = logging.getLogger(__name__)
SCHEMA = "auth"  # the node's own administration: accounts, tokens, and these
NOTE_MAX = 500
_LOCK_CLASS = 0x444C  # pg_advisory_xact_lock(class, letter): "DL"


class State(StrEnum):
    OPEN = "open"
    REDELIVERED = "redelivered"
    DISCARDED = "discarded"


@dataclass(frozen=True)
class Handling:
    """What administrators did with one dead letter so far."""

    state: State = State.OPEN
    note: str | None = None  # why it was discarded
    handled_by: str | None = None
    handled_at: datetime | None = None
    attempts: int = 0  # redeliveries tried
    last_error: str | None = None


class RedeliveryFailed(Conflict):
    """The consumer's handler failed again: the letter stays open, the attempt is recorded."""

    type = "redelivery-failed"
    title = "The consumer failed again"


# -- pure rules -------------------------------------------------------------------------------


def check_redeliverable(handling: Handling) -> None:
    if handling.state is State.DISCARDED:
        raise Conflict("this dead letter was discarded; it cannot be redelivered", field="id")
    if handling.state is State.REDELIVERED:
        raise Conflict("this dead letter was already redelivered", field="id")


def check_discardable(handling: Handling) -> None:
    if handling.state is State.DISCARDED:
        raise Conflict("this dead letter was already discarded", field="id")
    if handling.state is State.REDELIVERED:
        raise Conflict("this dead letter was redelivered; there is nothing to discard", field="id")


def checked_note(note: str | None) -> str:
    """Why a letter is discarded: required, one short line (it is shown in lists)."""
    text = " ".join((note or "").split())
    if not text:
        raise Invalid("say why the dead letter is discarded", field="reason")
    if len(text) > NOTE_MAX:
        raise Invalid(f"the reason is at most {NOTE_MAX} characters", field="reason")
    return text


def handling_of(letter: DeadLetter, row: dict[str, Any] | None) -> Handling:
    """The handling a row records, if it is about this letter: a row naming another message is
    from a DEADLETTER stream that was made again from empty, and says nothing of this one."""
    if row is None or (row["stream"], row["stream_seq"], row["consumer"]) != (
        letter.stream,
        letter.stream_seq,
        letter.consumer,
    ):
        return Handling()
    return Handling(
        state=State(row["state"]),
        note=row["note"],
        handled_by=row["handled_by"],
        handled_at=row["handled_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


def view(letter: DeadLetter, handling: Handling) -> dict[str, Any]:
    """A dead letter as the API shows it: ids, types and reasons, never the content."""
    return {
        "id": letter.id,
        "at": letter.at,
        "stream": letter.stream,
        "stream_seq": letter.stream_seq,
        "consumer": letter.consumer,
        "why": letter.why,
        "reason": letter.reason,
        "deliveries": letter.deliveries,
        "subject": letter.subject,
        "event_type": letter.event_type,
        "event_id": letter.event_id,
        "state": handling.state.value,
        "note": handling.note,
        "handled_by": handling.handled_by,
        "handled_at": handling.handled_at.isoformat() if handling.handled_at else None,
        "attempts": handling.attempts,
        "last_error": handling.last_error,
    }


def _audited(letter: DeadLetter, **extra: Any) -> dict[str, Any]:
    return {
        "stream": letter.stream,
        "stream_seq": letter.stream_seq,
        "consumer": letter.consumer,
        "event_id": letter.event_id,
        **extra,
    }


# -- reading ----------------------------------------------------------------------------------


async def listing(bus: Bus, pool: Pool, limit: int = 100) -> list[dict[str, Any]]:
    """The most recent dead letters, newest last, each with what was done with it."""
    letters = await bus.dead_letters(limit)
    rows = await pool.fetch(
        f"SELECT * FROM {SCHEMA}.dead_letters WHERE id = ANY($1::bigint[])",
        [letter.id for letter in letters],
    )
    by_id = {row["id"]: dict(row) for row in rows}
    return [view(letter, handling_of(letter, by_id.get(letter.id))) for letter in letters]


async def describe(bus: Bus, pool: Pool, letter_id: int) -> dict[str, Any]:
    letter = await _letter(bus, letter_id)
    async with pool.acquire() as conn:
        return view(letter, await _handling(conn, letter))


async def _letter(bus: Bus, letter_id: int) -> DeadLetter:
    letter = await bus.dead_letter(letter_id)
    if letter is None:
        raise NotFound(f"no dead letter {letter_id} on this node", field="id")
    return letter


async def _handling(conn: Connection, letter: DeadLetter) -> Handling:
    row = await conn.fetchrow(f"SELECT * FROM {SCHEMA}.dead_letters WHERE id = $1", letter.id)
    return handling_of(letter, dict(row) if row is not None else None)


async def _lock(conn: Connection, letter: DeadLetter) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLASS, letter.id % 2**31)


async def _save(conn: Connection, letter: DeadLetter, handling: Handling) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.dead_letters (id, stream, stream_seq, consumer, state, note,"
        " handled_by, handled_at, attempts, last_error)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (id) DO UPDATE SET stream = EXCLUDED.stream,"
        " stream_seq = EXCLUDED.stream_seq, consumer = EXCLUDED.consumer,"
        " state = EXCLUDED.state, note = EXCLUDED.note, handled_by = EXCLUDED.handled_by,"
        " handled_at = EXCLUDED.handled_at, attempts = EXCLUDED.attempts,"
        " last_error = EXCLUDED.last_error",
        letter.id,
        letter.stream,
        letter.stream_seq,
        letter.consumer,
        handling.state.value,
        handling.note,
        handling.handled_by,
        handling.handled_at,
        handling.attempts,
        handling.last_error,
    )


# -- acting -----------------------------------------------------------------------------------


async def redeliver(bus: Bus, pool: Pool, letter_id: int, actor: Actor) -> dict[str, Any]:
    """Hand the message to its consumer's handler again; ``RedeliveryFailed`` if it fails."""
    letter = await _letter(bus, letter_id)
    subscription = bus.subscriptions.get(f"{letter.stream}/{letter.consumer}")
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, letter)
        handling = await _handling(conn, letter)
        check_redeliverable(handling)
        if subscription is None:
            raise Conflict(
                f"the consumer {letter.consumer} of {letter.stream} does not run in this node",
                field="consumer",
            )
        try:
            message = await bus.js.get_msg(letter.stream, letter.stream_seq)
        except NotFoundError:
            raise Conflict(
                f"message {letter.stream_seq} is no longer in {letter.stream} (its retention"
                " passed): it can only be discarded",
                field="id",
            ) from None
        failure = await _hand_again(subscription, letter, message)
        attempts = handling.attempts + 1
        if failure is None:
            handling = replace(
                handling,
                state=State.REDELIVERED,
                handled_by=actor.name,
                handled_at=datetime.now(UTC),
                attempts=attempts,
            )
        else:
            handling = replace(handling, attempts=attempts, last_error=failure[:NOTE_MAX])
        await _save(conn, letter, handling)
        await audit_trail.record(
            conn,
            SCHEMA,
            actor=actor,
            action="dead_letter.redelivered",
            object=f"dead-letter:{letter.id}",
            content=_audited(letter, attempt=attempts, error=failure),
            outcome=Outcome.OK if failure is None else Outcome.FAILED,
        )
    if failure is not None:
        raise RedeliveryFailed(f"{letter.consumer} failed again: {failure}"[:NOTE_MAX], field="id")
    return view(letter, handling)


async def _hand_again(subscription: Subscription, letter: DeadLetter, message: Any) -> str | None:
    """Run the consumer's handler on the message as the bus would; why it failed, or None."""
    delivery = Delivery(
        subject=message.subject,
        stream=letter.stream,
        stream_seq=letter.stream_seq,
        num_delivered=(letter.deliveries or 0) + 1,
    )
    try:
        event = CloudEvent.from_json(message.data or b"")
        payload = parse_payload(event)
        with telemetry.consume_span(event, message.subject, message.headers or {}):
            await subscription.handler(event, payload, delivery)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("dead letter %s: %s failed again (%s)", letter.id, subscription.durable, exc)
        return f"{type(exc).__name__}: {exc}"
    log.info("dead letter %s: redelivered to %s", letter.id, subscription.durable)
    return None


async def discard(
    bus: Bus, pool: Pool, letter_id: int, actor: Actor, note: str | None
) -> dict[str, Any]:
    """Set the letter aside for good, saying why."""
    reason = checked_note(note)
    letter = await _letter(bus, letter_id)
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, letter)
        handling = await _handling(conn, letter)
        check_discardable(handling)
        handling = replace(
            handling,
            state=State.DISCARDED,
            note=reason,
            handled_by=actor.name,
            handled_at=datetime.now(UTC),
        )
        await _save(conn, letter, handling)
        await audit_trail.record(
            conn,
            SCHEMA,
            actor=actor,
            action="dead_letter.discarded",
            object=f"dead-letter:{letter.id}",
            content=_audited(letter, reason=reason),
        )
    return view(letter, handling)
