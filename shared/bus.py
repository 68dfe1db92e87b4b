"""The one place that speaks nats-py: connection, streams, publishing, durable consumers.

Publishing sets ``Nats-Msg-Id`` (the event id, for JetStream deduplication) and
``traceparent`` (W3C trace context); requests carry ``traceparent`` too, and each command
answered runs in its own span. Consumers are durable pull consumers with explicit ack:
a handler that returns acks; one that raises ``PermanentFailure`` or a ``DomainError`` is
terminated with its reason (the ``DEADLETTER`` stream keeps the advisory, the message stays in
its stream for an operator); a handler that fails because the database or the broker is down
keeps its message (``in_progress``) and tries again in place until it is back, so an outage
spends none of the delivery budget; any other exception is retried later (``nak`` with
back-off) until ``max_deliver``, after which the message is dead-lettered too. Malformed and unknown
events are dead-lettered without reaching a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from prometheus_client import Counter
from pydantic import ValidationError

from shared import outages, telemetry
from shared.errors import (
    BY_TYPE,
    DomainError,
    Invalid,
    InvalidTransition,
    PermanentFailure,
    Unavailable,
)
from shared.events import BROADCAST, CloudEvent, Payload, parse_payload, registry
from shared.federation import DEADLETTER, SourceConsumer
from shared.lanes import Lanes, give_back, sender_of
from shared.supervision import Supervisor

log = logging.getLogger(__name__)
# How long one fetch waits for messages (also its ``expires`` at the server).
FETCH_WAIT = 2.0
PUBLISHED = Counter("relais_events_published_total", "Events published to JetStream", ["type"])
CONSUMED = Counter(
    "relais_events_consumed_total",
    "Deliveries handled, by outcome: acked, retried, held (an outage waited out in place), "
    "parked (dead-lettered), absorbed (counted in a flood incident: no dead letter) or skipped",
    ["consumer", "outcome"],
)


def login(addresses: str | Sequence[str]) -> dict[str, Any]:
    """``nats.connect``'s ``servers``, ``user`` and ``password`` for these addresses (a list, or
    one string of comma-separated URLs: every server of a hub cluster, to fail over between).

    The credentials go in as options rather than staying in the URLs: nats-py tells the servers
    a cluster announces from those of its pool by ``netloc``, credentials included, so it adds
    each announced server again without them, and reconnecting to one after a server is lost is
    refused (``Authorization Violation``); options apply to every server it tries."""
    urls = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    servers: list[str] = []
    user = password = None
    for url in (u.strip() for u in urls if u.strip()):
        parts = urlsplit(url)
        if parts.username is not None:
            user, password = parts.username, parts.password
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        servers.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    if not servers:
        raise ValueError("no NATS server address")
    options: dict[str, Any] = {"servers": servers}
    if user is not None:
        # a user alone in a URL is a token, as nats-py reads it
        options.update({"user": user, "password": password} if password else {"token": user})
    return options


def shown(addresses: str | Sequence[str]) -> str:
    """The addresses as a log line may show them: without their credentials."""
    return ",".join(login(addresses)["servers"])


@dataclass(frozen=True)
class Delivery:
    """What the broker says about one delivery of an event."""

    subject: str
    stream: str
    stream_seq: int
    num_delivered: int

    @property
    def sender(self) -> str | None:
        """The sending organisation of a network event (third subject token)."""
        return sender_of(self.subject) or None


Handler = Callable[[CloudEvent, Payload, Delivery], Awaitable[None]]
# Asked before a delivery from another organisation is parked, with the reason: True if it
# took the delivery instead (a flood counted as one incident: services/referrals/floods.py).
Absorber = Callable[[Delivery, str], Awaitable[bool]]
# Several events of one fetch at once, in stream order: all applied (in one transaction) or,
# if it raises, none, and then each goes through ``handler`` alone with the usual retries.
BatchHandler = Callable[[Sequence[tuple[CloudEvent, Payload, Delivery]]], Awaitable[None]]
Responder = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Subscription:
    """A durable consumer: which stream, which subjects, which handler, how to retry."""

    stream: str
    durable: str
    subjects: Sequence[str]
    handler: Handler
    max_deliver: int = 6
    retry_delays: Sequence[float] = (1.0, 5.0, 30.0, 120.0, 600.0)
    ack_wait: float = 60.0
    # Between tries in place while the database or broker is down (the last one repeats);
    # each well under ack_wait, which ``in_progress`` restarts before every pause.
    outage_pauses: Sequence[float] = (0.5, 1.0, 2.0, 5.0)
    batch: int = 32
    # Optional: a fetch of several events handled at once (the audit chain appends them in
    # one transaction); ``handler`` still takes each event alone when the batch fails.
    batch_handler: BatchHandler | None = None
    # The node's own broadcasts come back through its INBOX and are skipped; a consumer that
    # watches the hub's ROUTER (the audit's network log) wants them.
    own_broadcasts: bool = False
    absorb: Absorber | None = None
    # Fair queueing per sender (shared/lanes.py): fetched ahead, up to ``max_ack_pending``,
    # and delivered in a lane per sending organisation, so one member's flood waits behind
    # itself only.
    lanes: bool = False
    max_ack_pending: int = 1000

    @classmethod
    def routing(
        cls, stream: str, durable: str, handlers: Mapping[type[Payload], Handler], **options: Any
    ) -> Subscription:
        """One consumer for several event types, each to its handler, subjects from the registry."""
        by_type = {registry.for_payload(model).name: handler for model, handler in handlers.items()}

        async def dispatch(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            handler = by_type.get(event.type)
            if handler is None:
                raise PermanentFailure(f"{durable} does not handle {event.type}")
            await handler(event, payload, delivery)

        subjects = sorted({registry.for_payload(m).subject_pattern() for m in handlers})
        return cls(stream=stream, durable=durable, subjects=subjects, handler=dispatch, **options)


@dataclass(frozen=True)
class DeadLetter:
    """A message a consumer gave up on, as an operator needs to see it (no content)."""

    id: int  # the sequence of JetStream's notice in DEADLETTER
    stream: str
    stream_seq: int
    consumer: str
    why: str
    reason: str
    deliveries: int | None
    subject: str | None
    event_type: str | None
    event_id: str | None
    at: str | None


@dataclass
class Bus:
    """A node's connection to its own NATS server and JetStream domain."""

    nc: Client
    js: JetStreamContext
    org: str
    supervisor: Supervisor = field(default_factory=Supervisor)  # the consumers' pull loops
    _consuming: dict[str, bool] = field(default_factory=dict)
    _pulls: list[Any] = field(default_factory=list)  # nats-py's pull subscriptions
    _serving: list[Any] = field(default_factory=list)  # request/reply subscriptions
    # What each durable consumer runs, by "<stream>/<durable>": an operator's redelivery of a
    # dead letter hands the message to the same handler (shared/deadletters.py).
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    closing: bool = False
    # The pull loops inside a fetch or a delivery, which a stop lets end by themselves.
    _fetching: set[str] = field(default_factory=set)
    _fetches_over: asyncio.Event = field(default_factory=asyncio.Event)
    # Called after each reconnection: notices (``notice``) sent while disconnected are lost,
    # so what they keep fresh (the referrals' roster) forgets it all then.
    reconnected: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    async def connect(cls, url: str, *, org: str, name: str) -> Bus:
        """``url``: one address, or several separated by commas (every server of the hub
        cluster, or of the node's own), tried in turn and on each reconnection."""
        where = shown(url)

        async def on_error(exc: Exception) -> None:
            log.warning("nats: %s", exc)

        bus: Bus | None = None

        async def on_disconnect() -> None:
            if bus is None or not bus.closing:
                log.warning("nats: disconnected from %s", where)

        async def on_reconnect() -> None:
            log.info("nats: reconnected to %s", where)
            for hook in bus.reconnected if bus is not None else ():
                hook()

        nc = await nats.connect(
            **login(url),
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
            allow_reconnect=True,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            drain_timeout=5,
        )
        bus = cls(nc=nc, js=nc.jetstream(timeout=5), org=org)
        return bus

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    @property
    def consumers_ready(self) -> bool:
        return all(self._consuming.values())

    # -- streams ---------------------------------------------------------------------------

    async def ensure_stream(self, config: StreamConfig, *, api: str | None = None) -> None:
        """Create the stream, or bring an existing one to this configuration; ``api``: in the
        JetStream API reached at that prefix (another account's, on the hub) instead of ours."""
        js = self.js if api is None else self.nc.jetstream(prefix=api, timeout=5)
        try:
            await js.add_stream(config)
        except BadRequestError:
            # ``first_seq`` is where a NEW stream starts, never a change. The server does not
            # apply it on update, but it stores it, and when it next starts it deletes every
            # message below the stored value: a node restarted (a fresh ``first_seq`` from the
            # clock) and then its nats-server restarted lost its whole OUTBOX, unsent events
            # included. Cleared here, which also repairs a store that got one that way.
            await js.update_stream(replace(config, first_seq=None))

    async def ensure_consumer(self, consumer: SourceConsumer) -> None:
        """Create the durable consumer a stream source names, or update it in place."""
        js = self.js if consumer.api is None else self.nc.jetstream(prefix=consumer.api, timeout=5)
        await js.add_consumer(consumer.stream, consumer.config)

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, subject: str, event: CloudEvent, *, ack_wait: float = 5.0) -> int:
        """Publish to JetStream and wait for the stream's ack; returns the stream sequence.

        Raises ``Invalid`` before sending anything if the event's type is unknown, its data
        does not match the type's model, or the subject does not fit the type.
        """
        check_publishable(subject, event)
        headers = {"Nats-Msg-Id": event.id}
        telemetry.inject(headers)
        ack = await self.js.publish(subject, event.to_json(), timeout=ack_wait, headers=headers)
        PUBLISHED.labels(event.type).inc()
        return int(ack.seq)

    # -- consuming -------------------------------------------------------------------------

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the durable consumer and start pulling from it in the background."""
        config = ConsumerConfig(
            durable_name=subscription.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=subscription.max_deliver,
            ack_wait=subscription.ack_wait,
            filter_subjects=list(subscription.subjects),
            max_ack_pending=subscription.max_ack_pending,
        )
        # Creating a durable that exists updates it (nats-server 2.10+): filters may change.
        await self.js.add_consumer(subscription.stream, config)
        key = f"{subscription.stream}/{subscription.durable}"
        self.subscriptions[key] = subscription
        self._consuming[key] = False
        self.supervisor.start(f"consume {key}", lambda: self._pull(subscription, key))

    async def _pull(self, sub: Subscription, key: str) -> None:
        """Fetch and deliver until the bus closes; a failure it cannot wait out here (an ack
        on a lost connection, a consumer that vanished) ends it, and the supervisor binds it
        again after a back-off."""
        self._consuming[key] = False
        psub = await self.js.pull_subscribe_bind(sub.durable, sub.stream)
        self._pulls.append(psub)
        try:
            await self._fetch_and_deliver(sub, key, psub)
        except Exception:
            self._consuming[key] = False
            self._pulls.remove(psub)
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
            raise

    async def _fetch_and_deliver(self, sub: Subscription, key: str, psub: Any) -> None:
        lanes = None
        if sub.lanes:
            lanes = Lanes(
                lambda msg: self._deliver(sub, msg), name=key, keep_alive=sub.ack_wait / 3
            )
        try:
            await self._fetch_loop(sub, key, psub, lanes)
        finally:
            if lanes is not None:
                await lanes.close()
            if self.closing:
                await give_back(_arrived_late(psub))

    async def _fetch_loop(
        self, sub: Subscription, key: str, psub: Any, lanes: Lanes | None
    ) -> None:
        self._fetching.add(key)
        try:
            await self._fetch_until_closing(sub, key, psub, lanes)
        finally:
            self._fetching.discard(key)
            if not self._fetching:
                self._fetches_over.set()

    async def _fetch_until_closing(
        self, sub: Subscription, key: str, psub: Any, lanes: Lanes | None
    ) -> None:
        while not self.closing:
            if lanes is not None:
                lanes.check()
            try:
                messages = await psub.fetch(sub.batch, timeout=FETCH_WAIT)
            except (NatsTimeout, TimeoutError):
                self._consuming[key] = True
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker outage: wait, the client reconnects
                if self.closing:
                    return  # nats-py may turn our own cancellation into an error
                self._consuming[key] = False
                log.warning("consumer %s: fetch failed (%s); retrying", key, exc)
                await asyncio.sleep(1)
                continue
            self._consuming[key] = True
            if lanes is not None:
                for msg in messages:
                    lanes.put(msg)
                continue
            left = list(messages)
            try:
                if sub.batch_handler is not None and len(left) > 1:
                    left = await self._deliver_batch(sub, left)
                while left and not self.closing:
                    await self._deliver(sub, left[0])
                    left.pop(0)
            except asyncio.CancelledError:
                await give_back(left)
                raise
            await give_back(left)

    async def _deliver_batch(self, sub: Subscription, messages: list[Msg]) -> list[Msg]:
        """Hand the well-formed events of ``messages`` to ``sub.batch_handler`` at once and
        ack them; returns what is left for ``_deliver``, one by one: the messages it skips or
        parks, and every message if the batch failed (nothing of it applied)."""
        assert sub.batch_handler is not None
        items: list[tuple[CloudEvent, Payload, Delivery]] = []
        taken: list[Msg] = []
        for msg in messages:
            if not sub.own_broadcasts and _is_own_broadcast(msg.subject, self.org):
                break  # the rest in order, by the usual path
            try:
                event = CloudEvent.from_json(msg.data)
                payload = parse_payload(event)
            except Invalid:
                break
            meta = msg.metadata
            delivery = Delivery(msg.subject, meta.stream, meta.sequence.stream, meta.num_delivered)
            items.append((event, payload, delivery))
            taken.append(msg)
        if len(taken) < 2:
            return messages
        try:
            spanned = [
                (e, m.subject, m.headers or {}) for (e, _, _), m in zip(items, taken, strict=True)
            ]
            with telemetry.consume_batch_spans(spanned):
                await sub.batch_handler(items)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # each one alone now, with the usual outcomes
            log.info(
                "consumer %s: a batch of %d failed (%s); one by one", sub.durable, len(taken), exc
            )
            return messages
        for msg in taken:
            await msg.ack()
        CONSUMED.labels(sub.durable, "acked").inc(len(taken))
        return messages[len(taken) :]

    async def _deliver(self, sub: Subscription, msg: Msg) -> None:
        meta = msg.metadata
        delivery = Delivery(
            subject=msg.subject,
            stream=meta.stream,
            stream_seq=meta.sequence.stream,
            num_delivered=meta.num_delivered,
        )
        if not sub.own_broadcasts and _is_own_broadcast(msg.subject, self.org):
            await msg.ack()
            CONSUMED.labels(sub.durable, "skipped").inc()
            return
        try:
            event = CloudEvent.from_json(msg.data)
            payload = parse_payload(event)
        except Invalid as exc:
            await self._park(msg, sub, delivery, exc.detail)
            return
        with telemetry.consume_span(event, msg.subject, msg.headers or {}):
            for tries in itertools.count():
                try:
                    await sub.handler(event, payload, delivery)
                except (PermanentFailure, DomainError) as exc:
                    if isinstance(exc, DomainError) and exc.transient:
                        await self._retry(msg, sub, event, delivery)
                        return
                    await self._park(msg, sub, delivery, f"{type(exc).__name__}: {exc}")
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    down = outages.unavailable(exc)
                    if down not in (outages.Dependency.DATABASE, outages.Dependency.BROKER):
                        await self._retry(msg, sub, event, delivery)
                        return
                    if self.closing:
                        return  # unacked: delivered again after ack_wait, to the next start
                    # Not this event's fault: a nak would spend a delivery on the outage, and
                    # a few outages in a row would dead-letter an event nothing is wrong with.
                    await self._hold(msg, sub, event, down, tries)
                    continue
                break
        await msg.ack()
        CONSUMED.labels(sub.durable, "acked").inc()

    async def _hold(
        self,
        msg: Msg,
        sub: Subscription,
        event: CloudEvent,
        down: outages.Dependency,
        tries: int,
    ) -> None:
        """Keep ``msg`` while ``down`` is unavailable: tell the broker it is still being
        worked on, pause, and let the caller try the handler again."""
        pause = sub.outage_pauses[min(tries, len(sub.outage_pauses) - 1)]
        if tries == 0:
            log.warning(
                "consumer %s: %s %s waits for the %s to be back",
                sub.durable,
                event.type,
                event.id,
                down.value,
            )
        CONSUMED.labels(sub.durable, "held").inc()
        with contextlib.suppress(Exception):  # the broker itself may be what is down
            await msg.in_progress()
        await asyncio.sleep(pause)

    async def _retry(
        self, msg: Msg, sub: Subscription, event: CloudEvent, delivery: Delivery
    ) -> None:
        delay = sub.retry_delays[min(delivery.num_delivered, len(sub.retry_delays)) - 1]
        log.exception(
            "consumer %s: %s %s failed (delivery %d); retrying in %ss",
            sub.durable,
            event.type,
            event.id,
            delivery.num_delivered,
            delay,
        )
        await msg.nak(delay=delay)
        CONSUMED.labels(sub.durable, "retried").inc()

    async def _park(self, msg: Msg, sub: Subscription, delivery: Delivery, reason: str) -> None:
        """Terminate ``msg`` (a dead letter), unless the subscription's ``absorb`` takes it."""
        if sub.absorb is not None and delivery.sender not in (None, self.org):
            try:
                taken = await sub.absorb(delivery, reason)
            except asyncio.CancelledError:
                raise
            except Exception:  # counting failed (the database?): park it as before
                log.exception("consumer %s: could not count a refused delivery", sub.durable)
                taken = False
            if taken:
                await msg.ack()
                CONSUMED.labels(sub.durable, "absorbed").inc()
                return
        await self._terminate(msg, sub.durable, reason)

    async def _terminate(self, msg: Msg, consumer: str, reason: str) -> None:
        log.error(
            "consumer %s: parking message %s: %s", consumer, msg.metadata.sequence.stream, reason
        )
        # nats-py's term() carries no reason; the protocol does, and the advisory keeps it.
        await self.nc.publish(msg.reply, b"+TERM " + reason[:500].encode())
        CONSUMED.labels(consumer, "parked").inc()

    # -- notices --------------------------------------------------------------------------

    async def notice(self, subject: str, body: dict[str, Any]) -> None:
        """Tell this node's services something on core NATS (``relais.notice.<service>.…``):
        at most once, no stream keeps it; for hints such as "drop what you cached", whose
        loss a listener survives (``reconnected`` says when some may have been lost)."""
        await self.nc.publish(subject, json.dumps(body).encode())
        # Out before the caller goes on: the server hands it to this node's listeners ahead of
        # anything the caller's next answer leads to.
        await self.nc.flush(timeout=2)

    async def on_notice(self, subject: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Hear the notices on ``subject``; a malformed one is logged and ignored."""

        async def heard(msg: Msg) -> None:
            try:
                body = json.loads(msg.data)
            except json.JSONDecodeError:
                log.warning("notice on %s is not JSON; ignored", subject)
                return
            if isinstance(body, dict):
                handler(body)

        self._serving.append(await self.nc.subscribe(subject, cb=heard))

    # -- request/reply ----------------------------------------------------------------------

    async def serve(self, subject: str, handler: Responder, *, queue: str) -> None:
        """Answer requests on ``subject`` (``relais.cmd.<service>.<action>``) on this node.

        The reply is ``{"result": ...}`` or a typed error, ``{"error": {"type", "title",
        "status", "detail", "field"}}``, the problem details the HTTP API gives for the same
        mistake; a request never goes unanswered for an error of its own.
        """

        async def answer(msg: Msg) -> None:
            # The command's span is current while it runs: the outbox rows it writes keep its
            # traceparent, so the events it causes belong to its trace.
            with telemetry.command_span(subject, msg.headers or {}) as span:
                reply = await respond(handler, msg.data)
                if "error" in reply:
                    span.set_attribute("error.type", str(reply["error"]["type"]))
            # Only to an inbox: a member system may publish commands, and a reply subject of
            # its choosing (relais.net.…) would have the services publish there for it.
            if msg.reply.startswith("_INBOX."):
                await self.nc.publish(msg.reply, json.dumps(reply, default=str).encode())
            elif msg.reply:
                log.warning("request on %s: reply subject is not an inbox; not answered", subject)

        self._serving.append(await self.nc.subscribe(subject, queue=queue, cb=answer))

    async def request(self, subject: str, body: dict[str, Any], *, wait: float = 5.0) -> Any:
        """Ask a service of this node (``relais.cmd.<service>.<action>``): its result, or the
        ``DomainError`` its typed error reply names; ``Unavailable`` if nobody answers."""
        try:
            headers: dict[str, str] = {}
            telemetry.inject(headers)
            msg = await self.nc.request(
                subject, json.dumps(body).encode(), timeout=wait, headers=headers or None
            )
        except (NatsTimeout, NoRespondersError) as exc:
            # Disconnected: the broker is what is down; connected, the service that answers.
            down = outages.Dependency.BROKER if not self.connected else outages.Dependency.SERVICE
            log.warning("request on %s: no answer (%s unavailable)", subject, down.value)
            raise outages.DependencyDown(down) from exc
        reply = json.loads(msg.data)
        error = reply.get("error")
        if error is not None:
            kind = BY_TYPE.get(str(error.get("type", "")).removeprefix("/problems/"), Unavailable)
            if kind is InvalidTransition:
                raise InvalidTransition(error["detail"], allowed=error.get("allowed"))
            raise kind(error.get("detail", "failed"), field=error.get("field"))
        return reply["result"]

    # -- dead letters ----------------------------------------------------------------------

    async def caught_up(self, stream: str, durable: str, seq: int) -> bool:
        """Whether consumer ``durable`` has acknowledged every message of ``stream`` it takes,
        up to stream sequence ``seq`` (True if there is no such consumer: nothing to wait for)."""
        try:
            info = await self.js.consumer_info(stream, durable)
        except NotFoundError:
            return True
        if (info.ack_floor.stream_seq or 0) >= seq:
            return True
        return not info.num_pending and not info.num_ack_pending

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent messages that were given up on, newest last."""
        try:
            info = await self.js.stream_info(DEADLETTER)
        except NotFoundError:
            return []
        if info.state.messages == 0:
            return []
        first = max(info.state.first_seq, info.state.last_seq - limit + 1, 1)
        letters: list[DeadLetter] = []
        for seq in range(first, info.state.last_seq + 1):
            try:
                raw = await self.js.get_msg(DEADLETTER, seq)
            except NotFoundError:
                continue
            letters.append(await self._describe(seq, json.loads(raw.data or b"{}")))
        return letters

    async def dead_letter(self, seq: int) -> DeadLetter | None:
        """The dead letter whose notice is ``seq`` in DEADLETTER, if it is still kept."""
        try:
            raw = await self.js.get_msg(DEADLETTER, seq)
        except NotFoundError:
            return None
        return await self._describe(seq, json.loads(raw.data or b"{}"))

    async def _describe(self, letter_id: int, advisory: dict[str, Any]) -> DeadLetter:
        stream, seq = str(advisory.get("stream", "")), int(advisory.get("stream_seq", 0))
        subject = event_type = event_id = None
        with contextlib.suppress(Exception):
            original = await self.js.get_msg(stream, seq)
            subject = original.subject
            envelope = json.loads(original.data or b"{}")
            event_type, event_id = envelope.get("type"), envelope.get("id")
        kind = str(advisory.get("type", ""))
        return DeadLetter(
            id=letter_id,
            stream=stream,
            stream_seq=seq,
            consumer=str(advisory.get("consumer", "")),
            why="terminated" if "terminated" in kind else "max_deliveries",
            reason=str(advisory.get("reason", "")),
            deliveries=advisory.get("deliveries"),
            subject=subject,
            event_type=event_type if isinstance(event_type, str) else None,
            event_id=event_id if isinstance(event_id, str) else None,
            at=advisory.get("timestamp"),
        )

    # -- shutdown --------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop consuming, flush what was published, and close."""
        self.closing = True
        # A fetch cut short loses what it had already received (nats-py holds it in the
        # cancelled call, unacked until ``ack_wait``): each pull loop gets as long as a fetch
        # lasts to end by itself and give back what it holds; then it is cancelled.
        if self._fetching:
            self._fetches_over.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fetches_over.wait(), FETCH_WAIT + 0.5)
        await self.supervisor.stop()
        for subscription in self._serving:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        # A pull subscription cancelled mid-fetch never drains: end the pulls first.
        for psub in self._pulls:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        self._pulls.clear()
        with contextlib.suppress(Exception):
            await self.nc.drain()
        with contextlib.suppress(Exception):
            await self.nc.close()


def _arrived_late(psub: Any) -> list[Msg]:
    """What the server delivered to a fetch the client had stopped waiting for (its pull
    request outlives the wait by a moment): nats-py keeps it for the next fetch, which a
    stopping consumer does not make, so it is handed back instead of waiting ``ack_wait``."""
    queue = psub._sub._pending_queue  # nats-py's own queue: no public way to read it
    late = []
    while not queue.empty():
        msg = queue.get_nowait()
        if not JetStreamContext.is_status_msg(msg):
            late.append(msg)
    return late


def check_publishable(subject: str, event: CloudEvent) -> None:
    """Refuse, before sending, an event whose type, data or subject is wrong."""
    event_type = registry[event.type]
    parse_payload(event)
    tokens = subject.split(".")
    expected = event_type.subject_pattern().split(".")
    if len(tokens) != len(expected) or any(
        want not in ("*", got) for want, got in zip(expected, tokens, strict=True)
    ):
        raise Invalid(
            f"{event.type} travels on {event_type.subject_pattern()}, not {subject}",
            field="subject",
        )


def _is_own_broadcast(subject: str, org: str) -> bool:
    tokens = subject.split(".")
    return len(tokens) > 3 and tokens[1] == "net" and tokens[2] == org and tokens[3] == BROADCAST


async def respond(handler: Responder, raw: bytes) -> dict[str, Any]:
    """Run a request handler on a raw JSON request; the reply, result or typed error."""
    try:
        request = json.loads(raw or b"{}")
        if not isinstance(request, dict):
            raise Invalid("a request is a JSON object", field="request")
        return {"result": await handler(request)}
    except json.JSONDecodeError:
        return _error(Invalid("the request is not JSON", field="request"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "request"
        return _error(Invalid(f"{where}: {first['msg']}", field=where))
    except DomainError as exc:
        return _error(exc)
    except Exception as exc:
        dependency = outages.unavailable(exc)
        if dependency is not None:
            # Not the caller's mistake, and nothing was done: the same request later may work.
            log.warning("request handler: %s unavailable (%s)", dependency.value, exc)
            return _error(outages.DependencyDown(dependency))
        log.exception("request handler failed")
        return {
            "error": {
                "type": "/problems/internal",
                "title": "Internal error",
                "status": 500,
                "detail": "Something went wrong on this node; it is logged.",
            }
        }


def _error(exc: DomainError) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": f"/problems/{exc.type}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "field": exc.field,
        **exc.extensions(),
    }
    if exc.transient:
        # What HTTP says with Retry-After: the seconds to wait before sending it again.
        error["retry_after"] = outages.RETRY_AFTER_SECONDS
    return {"error": error}
