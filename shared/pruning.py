"""Bounded storage: sent outbox rows and processed ids are pruned once they are older than the
retention window (``RELAIS_EVENT_RETENTION_HOURS``).

Both tables exist to recognise an event that comes again: ``processed`` makes a consumer ignore
a redelivery, and a sent outbox row is what ``OutboxRelay.replay`` publishes again. An event
comes again only for so long: the broker drops a republished copy within its duplicate window
(``duplicate_window`` of the streams, ``shared/federation.py``), and a consumer sees the same
message again only while JetStream keeps redelivering it (``max_deliver`` deliveries, each up to
``ack_wait`` plus the back-off of its retry, ``shared/bus.py``). A window shorter than the
longer of the two would let a late redelivery be applied twice, so the settings refuse it
(``minimum_window``).

Rows go in small batches, each its own short statement that skips rows another transaction
holds: the relay and the consumers never wait on the pruner for long. Unsent outbox rows are
never pruned, however old: they are events the network has not had yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter

from shared.db import Pool
from shared.federation import DEADLETTER, node_streams, router_stream
from shared.outbox import DATABASE_OR_BROKER_DOWN

log = logging.getLogger(__name__)

HOUR = 3600.0
# The longest a consumer of this project goes on redelivering one message, from its first
# delivery to its last, rounded up (the referrals' inbox: 10 deliveries over about 63 minutes,
# or 10 times its longest back-off of 20 minutes). tests/unit/test_pruning.py holds every
# consumer of every service to it: a longer retry schedule must raise it.
LONGEST_REDELIVERY = 4 * HOUR

PRUNED = Counter(
    "relais_pruned_rows_total",
    "Sent outbox rows and processed event ids deleted once older than the retention window",
    ["service", "table"],
)


def redelivery_span(max_deliver: int, retry_delays: Sequence[float], ack_wait: float) -> float:
    """The longest time between a message's first delivery and its last (in seconds).

    Each delivery may take up to ``ack_wait`` before the broker gives up on it; a failed one
    waits its back-off (``retry_delays``, the last one repeated) before the next.
    """
    waits = [retry_delays[min(n, len(retry_delays)) - 1] for n in range(1, max_deliver)]
    return max_deliver * ack_wait + sum(waits)


def duplicate_window() -> float:
    """The longest duplicate window of the streams a node or the hub declares (in seconds)."""
    streams = [
        *node_streams("member", hub_domain="hub", is_hub=False),
        *node_streams("hub", hub_domain="hub", is_hub=True),
        router_stream([], hub_domain="hub"),
    ]
    return max(float(s.duplicate_window or 0) for s in streams)


def stream_max_age() -> float:
    """How long a node's streams keep events (in seconds): what a consumer made afresh, or a
    node whose JetStream folder was lost, is handed again (``DEADLETTER`` keeps advisories)."""
    streams = node_streams("member", hub_domain="hub", is_hub=False)
    return max(float(s.max_age or 0) for s in streams if s.name != DEADLETTER)


def minimum_window() -> float:
    """The shortest retention window that still recognises every repeat (in seconds)."""
    return max(duplicate_window(), LONGEST_REDELIVERY)


# Oldest first, one batch at a time; ``sent_at < ...`` is never true of an unsent row (NULL).
OUTBOX_SQL = (
    "DELETE FROM {schema}.outbox WHERE seq IN ("
    " SELECT seq FROM {schema}.outbox"
    " WHERE sent_at < now() - make_interval(secs => $1::float8)"
    " ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
)
PROCESSED_SQL = (
    "DELETE FROM {schema}.processed WHERE (consumer, event_id) IN ("
    " SELECT consumer, event_id FROM {schema}.processed"
    " WHERE processed_at < now() - make_interval(secs => $1::float8)"
    " ORDER BY processed_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
)
TABLES = {"outbox": OUTBOX_SQL, "processed": PROCESSED_SQL}


@dataclass
class Pruner:
    """Prunes one service's outbox and processed tables, now and then, in batches."""

    pool: Pool
    schema: str
    window: float  # seconds; checked against ``minimum_window`` by the settings
    batch: int = 1000
    interval: float = 15 * 60.0
    pause: float = 0.05  # between batches, so that other work gets the table in between

    async def run(self) -> None:
        """Prune until cancelled. A database outage is waited out here, so that it does not
        also show as a failing task; anything else ends the task, and its supervisor
        restarts it."""
        if self.window < stream_max_age():
            log.warning(
                "pruning %s: the retention window (%g h) is shorter than the %g days the streams"
                " keep events: after a recovery that reads them again (consumers made afresh, a"
                " lost JetStream folder), events older than the window would be applied twice",
                self.schema,
                self.window / HOUR,
                stream_max_age() / 86400,
            )
        while True:
            try:
                await self.prune()
            except DATABASE_OR_BROKER_DOWN as exc:
                log.warning("pruning %s: database unavailable (%s); trying later", self.schema, exc)
                await asyncio.sleep(min(self.interval, 30.0))
                continue
            await asyncio.sleep(self.interval)

    async def prune(self) -> dict[str, int]:
        """Delete what is older than the window; returns how many rows, by table."""
        pruned = {table: await self._prune(table, sql) for table, sql in TABLES.items()}
        if any(pruned.values()):
            log.info(
                "pruning %s: %d sent outbox rows, %d processed ids older than %g h",
                self.schema,
                pruned["outbox"],
                pruned["processed"],
                self.window / HOUR,
            )
        return pruned

    async def _prune(self, table: str, sql: str) -> int:
        statement = sql.format(schema=self.schema)
        total = 0
        while True:
            status = await self.pool.execute(statement, self.window, self.batch)
            count = int(status.split()[-1])  # "DELETE <n>"
            total += count
            PRUNED.labels(self.schema, table).inc(count)
            if count < self.batch:
                return total
            await asyncio.sleep(self.pause)
