"""The two ways of sending sanad's probes to amal through the hub, measured the same way.

A: the project's path. Writers commit one event per transaction to sanad's outbox; the
``OutboxRelay`` publishes them to sanad's ``OUTBOX``; the hub's ``FROM_sanad``, ``ROUTER`` and
``TO_amal`` carry them to amal's ``INBOX``, where a ``Bus`` subscription handles them.
B: the baseline. The same events straight from nats-py's ``publish_async`` on sanad, through
the same streams, to a plain pull subscription on amal's ``INBOX``.

Each scenario sends ``arrivals.expected`` events and returns once all have arrived; the caller
bounds how long that may take (cancelling runs every clean-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared import outbox
from shared.bus import Bus, Delivery, Subscription
from shared.contracts.directory import LinkProbed
from shared.db import create_pool, migrate
from shared.events import CloudEvent, Payload, make_event
from shared.federation import INBOX
from tests.bench.measure import Arrivals, ScenarioFailed
from tests.bench.topology import SUBJECT, Federation

Say = Callable[[str], None]
Scenario = Callable[[Federation, Arrivals, Say], Awaitable[None]]
SOURCE = "relais://sanad/bench"
SCHEMA = "directory"


async def outbox_relay(fed: Federation, arrivals: Arrivals, say: Say, *, writers: int) -> None:
    """Scenario A: outbox → relay → JetStream → ``Bus`` consumer on another node.

    ``writers`` concurrent writers commit one event per transaction each, as a few busy case
    workers would.
    """
    url = await fed.net.postgres.ensure_database("bench_sanad")
    pool = await create_pool(url, max_size=writers + 2)
    # A connection of its own, closed at the end, so that B's run pays nothing for it.
    consumer = await Bus.connect(fed.plan("amal").nats_url, org="amal", name="bench-a-consumer")
    relay: asyncio.Task[None] | None = None
    writing: asyncio.Future[Any] | None = None
    try:
        await migrate(pool, SCHEMA, [])

        async def on_probe(event: CloudEvent, payload: Payload, _: Delivery) -> None:
            if isinstance(payload, LinkProbed):
                arrivals.arrived(payload.probe_id, event.time)

        await consumer.subscribe(Subscription.routing(INBOX, "bench", {LinkProbed: on_probe}))
        relay_loop = outbox.OutboxRelay(pool, fed.buses["sanad"], SCHEMA, url)
        relay = asyncio.create_task(relay_loop.run(), name="bench outbox relay")
        indexes = iter(range(arrivals.expected))

        async def writer() -> None:
            for index in indexes:  # shared: each writer takes the next index
                event = _probe(arrivals, index)
                async with pool.acquire() as conn, conn.transaction():
                    await outbox.add(conn, SCHEMA, SUBJECT, event)
                arrivals.written += 1

        async def progress() -> str:
            relayed = await pool.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.outbox WHERE sent_at IS NOT NULL"
            )
            return f"{arrivals.written} written, {relayed} relayed, {arrivals.tally}"

        arrivals.start()
        writing = asyncio.gather(*(writer() for _ in range(writers)))
        await arrivals.wait_all(progress, say, producer=writing)
    finally:
        await _cancel(writing)
        await _cancel(relay)
        await _close(consumer)
        await pool.close()


async def raw_publish(fed: Federation, arrivals: Arrivals, say: Say) -> None:
    """Scenario B: nats-py ``publish_async`` → JetStream → plain pull consumer on another node."""
    js_out, js_in = fed.buses["sanad"].js, fed.buses["amal"].js
    durable = "bench-raw"  # beside A's "bench"
    # Only what arrives from now on: scenario A's events are already in INBOX.
    start = (await js_in.stream_info(INBOX)).state.last_seq + 1
    await js_in.add_consumer(
        INBOX,
        ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            filter_subject=SUBJECT,
            max_ack_pending=1000,  # as the Bus's consumers
        ),
    )
    pull = await js_in.pull_subscribe_bind(durable, INBOX)
    consuming = asyncio.create_task(_consume(pull, arrivals), name="bench raw consumer")
    writing: asyncio.Future[Any] | None = None
    published = 0

    async def publish() -> None:
        nonlocal published
        acks = []
        for index in range(arrivals.expected):
            event = _probe(arrivals, index)
            headers = {"Nats-Msg-Id": event.id}
            acks.append(await js_out.publish_async(SUBJECT, event.to_json(), headers=headers))
            published += 1
        await js_out.publish_async_completed()
        failed = [ack.exception() for ack in acks if ack.exception() is not None]
        if failed:
            raise ScenarioFailed(f"{len(failed)} publishes not acknowledged: {failed[0]!r}")

    async def progress() -> str:
        acked = published - js_out.publish_async_pending()
        return f"{published} published, {acked} acknowledged, {arrivals.tally}"

    try:
        arrivals.start()
        writing = asyncio.ensure_future(publish())
        await arrivals.wait_all(progress, say, producer=writing)
    finally:
        await _cancel(writing)
        await _cancel(consuming)
        with contextlib.suppress(Exception):
            await pull.unsubscribe()


async def _consume(pull: Any, arrivals: Arrivals) -> None:
    while True:
        try:
            messages = await pull.fetch(256, timeout=2)
        except (NatsTimeout, TimeoutError):
            continue
        for msg in messages:
            envelope = json.loads(msg.data)
            arrivals.arrived(envelope["data"]["probe_id"], datetime.fromisoformat(envelope["time"]))
            await msg.ack()


def _probe(arrivals: Arrivals, index: int) -> CloudEvent:
    payload = LinkProbed(probe_id=arrivals.probe_id(index), sent_at=datetime.now(UTC))
    return make_event(payload, source=SOURCE)


async def _close(bus: Bus) -> None:
    """``Bus.close`` without its 30 s wait: nats-py's drain waits until the pull subscription's
    queue is marked done, which its fetch does not always do, so the drain sometimes runs to
    its timeout. Nothing is in flight here; one second is enough."""
    bus.nc.options["drain_timeout"] = 1
    await bus.close()


async def _cancel(task: asyncio.Future[Any] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def scenarios(*, writers: int) -> dict[str, tuple[str, Scenario]]:
    """Every scenario by key, with the path its events take."""
    return {
        "A": ("outbox → relay → federation → Bus consumer", partial(outbox_relay, writers=writers)),
        "B": ("publish_async → federation → pull consumer", raw_publish),
    }
