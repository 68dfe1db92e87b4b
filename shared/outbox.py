"""The transactional outbox: events are written with the state change, then relayed to NATS.

``add`` inserts the event in the caller's transaction (and wakes the relay on commit);
``OutboxRelay`` publishes unsent rows in order, marks them sent only after JetStream's ack,
waits out broker outages with back-off, and can replay what was already sent: PostgreSQL, not
the broker, is the system of record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from prometheus_client import Gauge

from shared import outages, telemetry
from shared.bus import Bus, check_publishable
from shared.db import Connection, Pool
from shared.events import CloudEvent

log = logging.getLogger(__name__)
# What the relay waits out in place (shared.outages says why it is that broad); anything else
# ends the relay, and its supervisor restarts it.
DATABASE_OR_BROKER_DOWN = outages.DATABASE_OR_BROKER_DOWN
UNSENT = Gauge(
    "relais_outbox_unsent",
    "Events written by a service but not yet acknowledged by the broker (counted while it fails)",
    ["service"],
)


def channel(schema: str) -> str:
    return f"relais_outbox_{schema}"


Outgoing: TypeAlias = tuple[str, CloudEvent]  # an event to write, with its subject


async def add(conn: Connection, schema: str, subject: str, event: CloudEvent) -> None:
    """Write ``event`` to ``schema``'s outbox inside the caller's transaction."""
    await add_all(conn, schema, [(subject, event)])


async def add_all(conn: Connection, schema: str, events: Sequence[Outgoing]) -> None:
    """Write ``events`` to ``schema``'s outbox, in this order, inside the caller's transaction:
    the several events of one change (its message to the other node, its local event, its audit
    record) in one statement rather than one each."""
    if not events:
        return
    for subject, event in events:
        check_publishable(subject, event)
    # One round trip: the rows, numbered (seq) in the order given, and the relay's wake-up
    # (sent on commit; PostgreSQL folds the same notification of one transaction into one).
    await conn.execute(
        f"WITH added AS (INSERT INTO {schema}.outbox (event_id, subject, event, traceparent)"
        " SELECT e.id, e.subject, e.event::jsonb, $4"
        " FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY"
        " AS e (id, subject, event, n) ORDER BY e.n RETURNING 1)"
        " SELECT pg_notify($5, '') FROM added LIMIT 1",
        [event.id for _, event in events],
        [subject for subject, _ in events],
        [json.dumps(event.model_dump(mode="json", exclude_none=True)) for _, event in events],
        telemetry.current_traceparent(),
        channel(schema),
    )


@dataclass
class OutboxRelay:
    """Publishes one schema's outbox to JetStream, in order, at least once."""

    pool: Pool
    bus: Bus
    schema: str
    dsn: str  # for the LISTEN connection, which lives outside the pool
    batch: int = 200
    poll_interval: float = 2.0
    _wake: asyncio.Event | None = None

    async def run(self) -> None:
        """Relay until cancelled: woken by NOTIFY, or by the poll if a notification was missed."""
        self._wake = asyncio.Event()
        listener: Connection | None = None
        backoff = 0.2
        try:
            while True:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                # Cleared before publishing: a commit during the publish wakes the next round.
                self._wake.clear()
                try:
                    while await self.publish_pending() == self.batch:
                        pass
                    backoff = 0.2
                    UNSENT.labels(self.schema).set(0)
                except (*DATABASE_OR_BROKER_DOWN, ConnectionError) as exc:
                    log.warning("outbox %s: relay paused (%s); retrying", self.schema, exc)
                    await self._count_unsent()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _listen(self) -> Connection | None:
        try:
            conn: Connection = await asyncpg.connect(self.dsn)
            await conn.add_listener(channel(self.schema), self._notified)
            return conn
        except DATABASE_OR_BROKER_DOWN as exc:
            log.warning("outbox %s: cannot LISTEN (%s); polling", self.schema, exc)
            return None

    async def _count_unsent(self) -> None:
        """What waits for the broker, for operators (skipped if the database is what failed)."""
        with contextlib.suppress(*DATABASE_OR_BROKER_DOWN):
            count = await self.pool.fetchval(
                f"SELECT count(*) FROM {self.schema}.outbox WHERE sent_at IS NULL", timeout=2
            )
            UNSENT.labels(self.schema).set(count)

    def _notified(self, *_: object) -> None:
        if self._wake is not None:
            self._wake.set()

    async def publish_pending(self) -> int:
        """Publish up to one batch of unsent events; returns how many were sent."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT seq, subject, event, traceparent FROM {self.schema}.outbox"
                " WHERE sent_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch,
            )
            if not rows:
                return 0
            results = await asyncio.gather(
                *(self._publish(r["subject"], r["event"], r["traceparent"]) for r in rows),
                return_exceptions=True,
            )
            sent = [r["seq"] for r, result in zip(rows, results, strict=True) if result is None]
            if sent:
                await conn.execute(
                    f"UPDATE {self.schema}.outbox SET sent_at = now() WHERE seq = ANY($1)", sent
                )
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures:
                raise ConnectionError(f"{len(failures)} events not acknowledged: {failures[0]!r}")
            return len(sent)

    async def _publish(
        self, subject: str, event: dict[str, object], traceparent: str | None
    ) -> None:
        with telemetry.continued(traceparent):
            await self.bus.publish(subject, CloudEvent.model_validate(event))

    async def replay(self, since_seq: int = 0) -> int:
        """Publish again every event from ``since_seq`` on, sent or not; returns the count.

        The broker drops repeats within its duplicate window and consumers are idempotent,
        so replaying more than needed is safe. Replay reaches back only as far as the
        retention window (``RELAIS_EVENT_RETENTION_HOURS``): sent rows older than it were
        pruned (``shared/pruning.py``), and a consumer would no longer recognise them anyway.
        """
        count = 0
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT seq, subject, event, traceparent FROM {self.schema}.outbox"
                " WHERE seq >= $1 ORDER BY seq",
                since_seq,
            )
        for row in rows:
            await self._publish(row["subject"], row["event"], row["traceparent"])
            count += 1
        return count
