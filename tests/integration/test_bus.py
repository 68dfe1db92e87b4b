"""The bus against a real nats-server: deduplication, retries, dead letters, idempotency."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from deploy.network import Network
from shared import outbox, processed, telemetry
from shared.bus import Bus, Delivery, Subscription
from shared.contracts.directory import LinkProbed
from shared.db import create_pool
from shared.errors import Invalid, PermanentFailure
from shared.events import CloudEvent, Payload
from tests.integration.conftest import OwnStream, probe_event
from tests.waiting import eventually


def subscription(
    stream: OwnStream, handler: Callable[..., Awaitable[None]], **options: Any
) -> Subscription:
    return Subscription.routing(stream.name, "worker", {LinkProbed: handler}, **options)


class TestPublishing:
    async def test_republishing_an_event_stores_it_once(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        event = probe_event()
        first = await hub_bus.publish(stream.subject(), event)
        again = await hub_bus.publish(stream.subject(), event)
        info = await hub_bus.js.stream_info(stream.name)
        assert info.state.messages == 1
        assert again == first

    async def test_an_invalid_event_is_refused_before_anything_is_sent(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        good = probe_event()
        unknown = good.model_copy(update={"type": "relais.link.vanished.v1"})
        bad_data = good.model_copy(update={"data": {"probe_id": ""}})
        with pytest.raises(Invalid, match="unknown event type"):
            await hub_bus.publish(stream.subject(), unknown)
        with pytest.raises(Invalid, match="probe_id"):
            await hub_bus.publish(stream.subject(), bad_data)
        with pytest.raises(Invalid, match="travels on"):
            await hub_bus.publish(f"relais.net.{stream.sender}.amal.organisation.published", good)
        assert (await hub_bus.js.stream_info(stream.name)).state.messages == 0


class TestConsuming:
    async def test_a_failed_handler_gets_the_event_again(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        deliveries: list[int] = []

        async def flaky(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            deliveries.append(delivery.num_delivered)
            if delivery.num_delivered == 1:
                raise ConnectionError("database briefly unavailable")

        await hub_bus.subscribe(subscription(stream, flaky, retry_delays=(0.1,)))
        await hub_bus.publish(stream.subject(), probe_event())
        await eventually(
            lambda: _true(deliveries == [1, 2]), within=10, what="a redelivery after the failure"
        )
        await asyncio.sleep(0.5)
        assert deliveries == [1, 2]  # acked after the success: not delivered a third time

    async def test_a_database_outage_spends_no_delivery_and_parks_nothing(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        """Longer than the delivery budget: with naks, this event would be dead-lettered."""
        tries: list[int] = []

        async def needs_the_database(
            event: CloudEvent, payload: Payload, delivery: Delivery
        ) -> None:
            tries.append(delivery.num_delivered)
            if len(tries) <= 8:  # the database is down: nothing listens where it was
                await asyncpg.connect(f"postgresql://relais@127.0.0.1:{_closed_port()}/x")

        await hub_bus.subscribe(
            subscription(
                stream,
                needs_the_database,
                max_deliver=3,
                retry_delays=(0.05,),
                outage_pauses=(0.05,),
            )
        )
        event = probe_event()
        await hub_bus.publish(stream.subject(), event)
        await eventually(lambda: _true(len(tries) == 9), within=20, what="handled once it is back")
        await asyncio.sleep(0.5)
        assert tries == [1] * 9  # held in place: one delivery, tried until the database was back
        assert not [d for d in await hub_bus.dead_letters() if d.event_id == event.id]

    async def test_an_event_that_always_fails_is_parked_with_its_id(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        async def broken(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            raise RuntimeError("bug")

        await hub_bus.subscribe(subscription(stream, broken, max_deliver=3, retry_delays=(0.05,)))
        event = probe_event()
        await hub_bus.publish(stream.subject(), event)

        async def parked() -> bool:
            return any(d.event_id == event.id for d in await hub_bus.dead_letters())

        await eventually(parked, within=10, what="the failing event parked")
        letter = next(d for d in await hub_bus.dead_letters() if d.event_id == event.id)
        assert (letter.why, letter.stream, letter.consumer) == (
            "max_deliveries",
            stream.name,
            "worker",
        )
        assert letter.event_type == "relais.link.probed.v1"

    async def test_malformed_and_unknown_events_are_parked_with_a_reason_and_the_rest_flows(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        handled: list[str] = []

        async def handler(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            handled.append(event.id)

        await hub_bus.subscribe(subscription(stream, handler))
        await hub_bus.js.publish(stream.subject(), b"{not json")
        unknown = probe_event().model_copy(update={"type": "relais.link.vanished.v1"})
        await hub_bus.js.publish(stream.subject(), unknown.to_json())  # past the publish check
        good = probe_event()
        await hub_bus.publish(stream.subject(), good)
        await eventually(
            lambda: _true(handled == [good.id]), within=10, what="the good one handled"
        )

        async def reasons() -> list[str]:
            return [d.reason for d in await hub_bus.dead_letters() if d.stream == stream.name]

        async def both_parked() -> bool:
            return len(await reasons()) == 2

        await eventually(both_parked, within=10, what="both bad messages parked")
        malformed, unknown_type = await reasons()
        assert "not a Relais CloudEvent" in malformed
        assert "unknown event type 'relais.link.vanished.v1'" in unknown_type

    async def test_a_refused_event_is_parked_not_retried(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        calls: list[int] = []

        async def refuse(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            calls.append(delivery.num_delivered)
            raise PermanentFailure("sender may not send this")

        await hub_bus.subscribe(subscription(stream, refuse))
        await hub_bus.publish(stream.subject(), probe_event())
        await eventually(
            lambda: _true(calls == [1]), within=10, what="one delivery of the refused event"
        )
        await asyncio.sleep(1.5)
        assert calls == [1]

    @pytest.mark.parametrize("lanes", [False, True], ids=["in-order", "lanes"])
    async def test_what_a_stopping_consumer_had_not_handled_goes_at_once_to_the_next_start(
        self, network: Network, hub_bus: Bus, stream: OwnStream, lanes: bool
    ) -> None:
        """Left unacked, the fetched events would wait out ``ack_wait`` (an hour here) while
        newer ones went first: after a node restart, a referral's receipt came a minute late."""
        stuck = asyncio.Event()

        async def hangs(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            stuck.set()
            await asyncio.Event().wait()  # mid-handling when the node stops

        first = await Bus.connect(network.hub.nats_url, org="secretariat", name="first")
        await first.subscribe(subscription(stream, hangs, ack_wait=3600, lanes=lanes))
        events = [probe_event(f"p{n}") for n in range(3)]
        for event in events:
            await hub_bus.publish(stream.subject(), event)
        async with asyncio.timeout(10):
            await stuck.wait()
        await first.close()

        handled: list[tuple[str, int]] = []

        async def records(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            handled.append((event.id, delivery.num_delivered))

        second = await Bus.connect(network.hub.nats_url, org="secretariat", name="second")
        try:
            await second.subscribe(subscription(stream, records, ack_wait=3600, lanes=lanes))
            await eventually(
                lambda: _true(len(handled) == 3), within=15, what="the three events handled"
            )
        finally:
            await second.close()
        assert [event_id for event_id, _ in handled] == [e.id for e in events]  # in their order
        assert handled[0][1] == 2  # the one cut short is delivered again


class TestBatches:
    async def test_a_backlog_goes_to_the_batch_handler_in_order_each_event_once(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        events = [probe_event() for _ in range(20)]
        for event in events:
            await hub_bus.publish(stream.subject(), event)
        batches: list[list[str]] = []
        alone: list[str] = []

        async def one(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            alone.append(event.id)

        async def many(items: Sequence[tuple[CloudEvent, Payload, Delivery]]) -> None:
            batches.append([event.id for event, _, _ in items])

        await hub_bus.subscribe(subscription(stream, one, batch_handler=many))
        await eventually(
            lambda: _true(sum(len(b) for b in batches) + len(alone) == 20),
            within=10,
            what="the backlog handled",
        )
        await asyncio.sleep(0.5)  # acked: nothing comes again
        handled = [event_id for batch in batches for event_id in batch] + alone
        assert handled == [event.id for event in events]
        assert any(len(batch) > 1 for batch in batches)

    async def test_each_event_of_a_batch_is_consumed_in_its_own_trace(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        """The hub's network log takes envelopes in batches: a referral's trace lacked its
        hub span whenever its envelope came with others."""
        telemetry.setup("relais-test", node_id="test", otlp_endpoint=None)
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        origins = {}
        for n in range(6):
            with telemetry.tracer.start_as_current_span(f"request {n}") as span:
                event = probe_event(f"p{n}")
                origins[event.id] = span.get_span_context().trace_id
                await hub_bus.publish(stream.subject(), event)
        sizes: list[int] = []

        async def one(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            sizes.append(1)

        async def many(items: Sequence[tuple[CloudEvent, Payload, Delivery]]) -> None:
            sizes.append(len(items))

        await hub_bus.subscribe(subscription(stream, one, batch_handler=many))
        await eventually(lambda: _true(sum(sizes) == 6), within=10, what="the backlog handled")
        assert max(sizes) > 1
        consumed = {
            dict(s.attributes or {})["messaging.message.id"]: s.context.trace_id
            for s in exporter.get_finished_spans()
            if s.kind is SpanKind.CONSUMER
        }
        assert {i: consumed.get(i) for i in origins} == origins

    async def test_a_failed_batch_is_handled_one_event_at_a_time_and_nothing_is_lost(
        self, hub_bus: Bus, stream: OwnStream
    ) -> None:
        events = [probe_event() for _ in range(5)]
        for event in events:
            await hub_bus.publish(stream.subject(), event)
        alone: list[str] = []
        tried: list[int] = []

        async def one(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            alone.append(event.id)

        async def many(items: Sequence[tuple[CloudEvent, Payload, Delivery]]) -> None:
            tried.append(len(items))
            raise RuntimeError("one of them does not fit the batch")

        await hub_bus.subscribe(subscription(stream, one, batch_handler=many))
        await eventually(lambda: _true(len(alone) == 5), within=10, what="each handled alone")
        await asyncio.sleep(0.5)
        assert alone == [event.id for event in events]
        assert tried and all(size > 1 for size in tried)


class TestIdempotentConsumer:
    async def test_an_effect_is_applied_once_when_the_event_is_delivered_twice(
        self, hub_bus: Bus, stream: OwnStream, database_url: str
    ) -> None:
        pool = await create_pool(database_url)
        await pool.execute("CREATE TABLE directory.effect (event_id text)")
        deliveries: list[int] = []

        async def apply_then_crash_before_ack(
            event: CloudEvent, payload: Payload, delivery: Delivery
        ) -> None:
            deliveries.append(delivery.num_delivered)
            async with pool.acquire() as conn, conn.transaction():
                if await processed.first_time(conn, "directory", "worker", event.id):
                    await conn.execute("INSERT INTO directory.effect VALUES ($1)", event.id)
            if delivery.num_delivered == 1:
                raise ConnectionError("lost the broker before the ack")

        await hub_bus.subscribe(
            subscription(stream, apply_then_crash_before_ack, retry_delays=(0.1,))
        )
        event = probe_event()
        await hub_bus.publish(stream.subject(), event)
        await eventually(
            lambda: _true(deliveries == [1, 2]),
            within=10,
            what="a second delivery after the lost ack",
        )
        assert await pool.fetchval("SELECT count(*) FROM directory.effect") == 1
        await pool.close()


async def _true(value: bool) -> bool:
    return value


class TestTracing:
    async def test_one_trace_follows_an_event_from_the_outbox_to_its_consumer(
        self, hub_bus: Bus, stream: OwnStream, database_url: str
    ) -> None:
        telemetry.setup("relais-test", node_id="test", otlp_endpoint=None)
        seen: list[int] = []

        async def handler(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            seen.append(trace.get_current_span().get_span_context().trace_id)

        await hub_bus.subscribe(subscription(stream, handler))
        pool = await create_pool(database_url)
        try:
            with telemetry.tracer.start_as_current_span("an HTTP request") as span:
                origin = span.get_span_context().trace_id
                async with pool.acquire() as conn, conn.transaction():
                    await outbox.add(conn, "directory", stream.subject(), probe_event())
            # The relay runs later, outside the request's span, as it would in a node.
            relay = outbox.OutboxRelay(pool, hub_bus, "directory", database_url)
            assert await relay.publish_pending() == 1
            await eventually(lambda: _true(len(seen) == 1), within=10, what="the event consumed")
        finally:
            await pool.close()
        assert origin != 0
        assert seen == [origin]

    async def test_the_events_a_command_causes_belong_to_its_span(
        self, hub_bus: Bus, stream: OwnStream, database_url: str
    ) -> None:
        telemetry.setup("test", node_id="test", otlp_endpoint=None)
        subject = f"relais.cmd.{stream.sender}.probe"
        spans: list[trace.SpanContext] = []
        pool = await create_pool(database_url)

        async def probe(request: dict[str, Any]) -> dict[str, Any]:
            spans.append(trace.get_current_span().get_span_context())
            async with pool.acquire() as conn, conn.transaction():
                await outbox.add(conn, "directory", stream.subject(), probe_event(request["id"]))
            return {}

        try:
            await hub_bus.serve(subject, probe, queue="test")
            # A member system that traces its own work sends its traceparent; one that does not
            # gets a trace that begins with the command.
            theirs = f"00-{'ab' * 16}-{'cd' * 8}-01"
            await hub_bus.nc.request(
                subject, b'{"id": "traced"}', timeout=5, headers={"traceparent": theirs}
            )
            await hub_bus.nc.request(subject, b'{"id": "untraced"}', timeout=5)
            relay = outbox.OutboxRelay(pool, hub_bus, "directory", database_url)
            assert await relay.publish_pending() == 2
        finally:
            await pool.close()
        published = []
        for seq in (1, 2):
            msg = await hub_bus.js.get_msg(stream.name, seq)
            published.append((msg.headers or {}).get("traceparent", ""))
        # traceparent: 00-<trace id>-<parent span id>-<flags>
        assert [p.split("-")[1:3] for p in published] == [
            [f"{span.trace_id:032x}", f"{span.span_id:016x}"] for span in spans
        ]
        assert spans[0].trace_id == int("ab" * 16, 16)
        assert spans[1].trace_id not in (0, spans[0].trace_id)


def _closed_port() -> int:
    """A local port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
