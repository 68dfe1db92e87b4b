"""The figures ``/metrics`` shows that no counter can: read again every ``RELAIS_METRICS_SECONDS``
from JetStream and the database by a supervised background task.

Counters (events published and consumed, HTTP requests, task restarts) count as things happen;
what an operator pages on after a fault is a state: how far a consumer is behind, how many
messages were given up on, since when the node has not heard from the hub, how old the oldest
event waiting in an outbox is. Those are polled, by:

- the node (``node_probes``): consumers' lag and redeliveries, dead letters, the link to the
  hub, the outboxes' oldest unsent rows, readiness;
- each service that has figures of its own (``watch``): notifications failing, the audit
  chain's unsigned head, overdue referrals.

A probe that cannot read (the database or the broker is down) keeps its last figures and counts
the failure; ``relais_metrics_collected_timestamp_seconds`` says how fresh each source is. A
probe that raises anything else is a bug: the task fails, and its supervisor restarts it and
says so (``relais_task_restarts_total``, ``/readyz``).

Labels stay few and say nothing about anyone: stream, consumer, service, urgency, channel,
check. No organisation other than the node's own, no referral, no person.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import asyncpg
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge

from shared.federation import DEADLETTER, HEARTBEAT, INBOX

if TYPE_CHECKING:
    from shared.runtime import NodeRuntime
    from shared.service import ServiceContext

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]
# What a probe waits out: the figures stay as they were, the failure is counted.
UNREADABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    NatsError,
)
PROBE_TIMEOUT = 5.0
# No word from the hub for this long, heartbeats included, is a link down.
LINK_SILENCE = 3 * HEARTBEAT

COLLECTED = Gauge(
    "relais_metrics_collected_timestamp_seconds",
    "When each source of polled figures was last read successfully (Unix time)",
    ["source"],
)
COLLECTION_FAILURES = Counter(
    "relais_metrics_collection_failures_total",
    "Polls of a source of figures that could not read it (database or broker down)",
    ["source"],
)
READY = Gauge("relais_ready", "1 while the node answers /readyz 200, else 0")
CHECK = Gauge(
    "relais_ready_check", "Each readiness check of /readyz: 1 passing, 0 failing", ["check"]
)
CONSUMER_PENDING = Gauge(
    "relais_consumer_pending",
    "Messages in the stream a durable consumer has not been given yet (its lag)",
    ["stream", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "relais_consumer_ack_pending",
    "Messages given to a consumer and not acknowledged yet",
    ["stream", "consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "relais_consumer_redelivered",
    "Messages a consumer is holding that were delivered more than once (being retried)",
    ["stream", "consumer"],
)
DEAD_LETTERS = Gauge(
    "relais_dead_letters", "Messages consumers gave up on, kept in the DEADLETTER stream"
)
HUB_LINK_UP = Gauge(
    "relais_hub_link_up",
    "On a member node: 1 while the hub was heard from within the last "
    f"{LINK_SILENCE:.0f} s (messages or heartbeats copied into INBOX), else 0",
)
HUB_LAST_CONTACT = Gauge(
    "relais_hub_last_contact_seconds",
    "On a member node: seconds since INBOX last heard from the hub (-1: never since it started)",
)
INBOX_SOURCE_LAG = Gauge(
    "relais_inbox_source_lag",
    "On a member node: messages at the hub addressed to this organisation not yet in INBOX",
)
OUTBOX_OLDEST = Gauge(
    "relais_outbox_oldest_unsent_seconds",
    "Age of the oldest event in a service's outbox not yet acknowledged by the broker (0: none)",
    ["service"],
)


async def poll(probes: Mapping[str, Probe], *, every: float) -> None:
    """Run every probe, then again every ``every`` seconds, until cancelled."""
    while True:
        for source, probe in probes.items():
            try:
                await asyncio.wait_for(probe(), PROBE_TIMEOUT)
            except UNREADABLE as exc:
                COLLECTION_FAILURES.labels(source).inc()
                log.debug("metrics: cannot read %s (%s)", source, exc)
            else:
                COLLECTED.labels(source).set(time.time())
        await asyncio.sleep(every)


def watch(ctx: ServiceContext, probes: Mapping[str, Probe]) -> None:
    """Poll a service's own figures in the background, for as long as the service runs."""
    named = {f"{ctx.name}: {source}": probe for source, probe in probes.items()}
    ctx.background("metrics", lambda: poll(named, every=ctx.settings.metrics_seconds))


# -- the node's own figures ---------------------------------------------------------------


def node_probes(runtime: NodeRuntime) -> dict[str, Probe]:
    probes: dict[str, Probe] = {
        "readiness": lambda: readiness(runtime),
        "consumers": lambda: consumers(runtime),
        "dead letters": lambda: dead_letters(runtime),
        "outboxes": lambda: outboxes(runtime),
    }
    if not runtime.settings.is_hub:
        probes["hub link"] = lambda: hub_link(runtime)
    return probes


async def readiness(runtime: NodeRuntime) -> None:
    checks = await runtime.checks()
    for name, ok in checks.items():
        CHECK.labels(name).set(1 if ok else 0)
    READY.set(1 if all(checks.values()) else 0)


async def consumers(runtime: NodeRuntime) -> None:
    """Every durable consumer of the node's own streams (on the hub, not the members')."""
    assert runtime.bus is not None
    js = runtime.bus.js
    for stream in await js.streams_info():
        name = stream.config.name
        if not name or name == DEADLETTER:
            continue
        try:
            found = await js.consumers_info(name)
        except NotFoundError:  # deleted since the listing
            continue
        for c in found:
            CONSUMER_PENDING.labels(name, c.name).set(c.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(name, c.name).set(c.num_ack_pending or 0)
            CONSUMER_REDELIVERED.labels(name, c.name).set(c.num_redelivered or 0)


async def dead_letters(runtime: NodeRuntime) -> None:
    assert runtime.bus is not None
    try:
        info = await runtime.bus.js.stream_info(DEADLETTER)
    except NotFoundError:
        DEAD_LETTERS.set(0)
        return
    DEAD_LETTERS.set(info.state.messages)


async def hub_link(runtime: NodeRuntime) -> None:
    """The link as INBOX's source sees it: the hub's ``TO_<org>`` is sourced with idle
    heartbeats every few seconds, so a source silent longer than that is a link down (or a hub
    that does not answer, which for this node is the same)."""
    assert runtime.bus is not None
    info = await runtime.bus.js.stream_info(INBOX)
    sources = info.sources or []
    active = [float(s.active) / 1e9 for s in sources if s.active is not None and s.active >= 0]
    silence = min(active) if active else -1.0
    HUB_LAST_CONTACT.set(silence)
    HUB_LINK_UP.set(1 if 0 <= silence <= LINK_SILENCE else 0)
    INBOX_SOURCE_LAG.set(sum(s.lag or 0 for s in sources))


async def outboxes(runtime: NodeRuntime) -> None:
    for name, context in runtime.contexts.items():
        if not await context.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{name}.outbox"):
            continue  # a service without an outbox table
        # The oldest unsent row is the first in the relay's order: one index probe.
        age = await context.pool.fetchval(
            f"SELECT extract(epoch FROM now() - created_at) FROM {name}.outbox"
            " WHERE sent_at IS NULL ORDER BY seq LIMIT 1"
        )
        OUTBOX_OLDEST.labels(name).set(max(float(age or 0), 0.0))
