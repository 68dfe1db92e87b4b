"""OpenTelemetry: one tracer provider per process, and trace context carried in NATS headers.

A span started by an HTTP request or a NATS command continues in the outbox row's
``traceparent``, the NATS message headers, and the consumer on another node, so one trace
follows an event end to end, whichever door the referral came in by. Spans go to an OTLP
collector when ``RELAIS_OTLP_ENDPOINT`` is set, nowhere otherwise.

Every process of a node reports as ``relais-<node>``, so a trace tells the nodes apart; which
of its services answered is the ``relais.service`` attribute.

Database queries are client spans (``query_logger``), children of whatever span ran them (a
request, a command, a consumed event); the pollers' queries outside any trace make none. They
carry the SQL text (parameters as ``$n``, never their values), never what was read or written.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shared.events import CloudEvent

tracer = trace.get_tracer("relais")
_configured = False


def resource(services: str, *, node_id: str) -> Resource:
    """Who reports the spans: the node (``service.name``), and which of its services."""
    return Resource.create(
        {
            "service.name": f"relais-{node_id}",
            "service.namespace": "relais",
            "relais.node": node_id,
            "relais.service": services,
        }
    )


def setup(services: str, *, node_id: str, otlp_endpoint: str | None) -> None:
    """Install the process's tracer provider (once); ``services``: the services the process
    runs, ``+``-separated."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=resource(services, node_id=node_id))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces"))
        )
    trace.set_tracer_provider(provider)
    _configured = True
    logging.getLogger(__name__).debug("tracing set up for %s on %s", services, node_id)


def instrument(app: FastAPI) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


def inject(headers: MutableMapping[str, str]) -> None:
    """Write the current trace context (``traceparent``) into outgoing headers."""
    propagate.inject(headers)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Run the block inside the trace a stored ``traceparent`` belongs to."""
    if not traceparent:
        yield
        return
    token = context.attach(propagate.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


def _consumer_attributes(event: CloudEvent, subject: str) -> dict[str, str]:
    return {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.message.id": event.id,
    }


@contextmanager
def consume_span(event: CloudEvent, subject: str, headers: Mapping[str, str]) -> Iterator[None]:
    """A consumer span, child of the producer's trace carried in the message headers."""
    parent = propagate.extract(dict(headers))
    with tracer.start_as_current_span(
        f"consume {event.type}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_consumer_attributes(event, subject),
    ):
        yield


@contextmanager
def consume_batch_spans(
    messages: Sequence[tuple[CloudEvent, str, Mapping[str, str]]],
) -> Iterator[None]:
    """A consumer span for each event of a batch handled at once, each child of its own
    producer's trace and lasting the batch: every event's trace shows where it was consumed,
    whether it came alone or with others. None becomes the current span (the batch's queries
    belong to no single event's trace)."""
    spans = [
        tracer.start_span(
            f"consume {event.type}",
            context=propagate.extract(dict(headers)),
            kind=SpanKind.CONSUMER,
            attributes=_consumer_attributes(event, subject),
        )
        for event, subject, headers in messages
    ]
    try:
        yield
    except BaseException as exc:
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()


@contextmanager
def command_span(subject: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """A server span for one request/reply command, continuing the caller's trace when its
    request carries a ``traceparent``: every event the command causes belongs to it."""
    parent = propagate.extract(dict(headers))
    with tracer.start_as_current_span(
        f"process {subject}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": subject,
            "messaging.operation.type": "process",
        },
    ) as span:
        yield span


def _exported() -> bool:
    """Whether the process's spans reach a processor (an exporter); True when it cannot tell."""
    provider = trace.get_tracer_provider()
    active = getattr(provider, "_active_span_processor", None)
    if not isinstance(provider, TracerProvider) or active is None:
        return True
    return bool(getattr(active, "_span_processors", True))


_LEADING_COMMENTS = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*", re.DOTALL)
QUERY_TEXT_LIMIT = 2000


def query_logger(service: str | None) -> Callable[[Any], None]:
    """An asyncpg query logger (``Connection.add_query_logger``) making one client span per
    query of ``service``'s connections, inside the trace that ran it. asyncpg calls it just
    after the query, in the caller's context, with how long the query took."""

    def record(query: Any) -> None:
        # Only inside a span that is recorded, and only if spans go anywhere: a node without
        # an OTLP endpoint records its spans (their ids travel in every event's traceparent)
        # and drops them, and a query's span, a leaf no event carries, made for nothing cost
        # a node 5-10 % of its time in the bench's profile.
        if not _exported() or not trace.get_current_span().is_recording():
            return
        end = time.time_ns()
        text = str(query.query or "")
        operation = (_LEADING_COMMENTS.sub("", text).split(None, 1) or ["QUERY"])[0].upper()
        params = query.conn_params
        attributes: dict[str, str | int] = {
            "db.system.name": "postgresql",
            "db.operation.name": operation,
            "db.query.text": text[:QUERY_TEXT_LIMIT],
        }
        if params is not None and getattr(params, "database", None):
            attributes["db.namespace"] = params.database
        if service:
            attributes["relais.service"] = service
        address = query.conn_addr
        if isinstance(address, tuple) and len(address) >= 2:
            attributes["server.address"], attributes["server.port"] = str(address[0]), address[1]
        elif address:
            attributes["server.address"] = str(address)  # a Unix socket's path
        span = tracer.start_span(
            f"{operation} {attributes.get('db.namespace', 'postgresql')}",
            kind=SpanKind.CLIENT,
            start_time=end - int(query.elapsed * 1e9),
            attributes=attributes,
        )
        if query.exception is not None:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", type(query.exception).__qualname__)
        span.end(end_time=end)

    return record
