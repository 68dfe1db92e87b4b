"""Database spans on a real PostgreSQL: a query run inside a trace is a client span of that
trace, named by its operation, with the SQL text but never its values, and the service whose
query it was; a query outside any trace (a poller's) makes none."""

from __future__ import annotations

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared import telemetry
from shared.db import create_pool
from tests.waiting import eventually

SECRET_VALUE = "CANARY-Aminata-Diop"


async def test_a_query_in_a_trace_is_its_span_with_no_values(database_url: str) -> None:
    telemetry.setup("referrals", node_id="test", otlp_endpoint=None)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pool = await create_pool(database_url, max_size=1, service="referrals")
    try:
        await pool.fetchval("SELECT 1")  # outside any trace: no span
        with telemetry.tracer.start_as_current_span("a command") as parent:
            assert await pool.fetchval("SELECT $1::text", SECRET_VALUE) == SECRET_VALUE
            async with pool.acquire() as conn:
                with pytest.raises(asyncpg.UndefinedTableError):
                    await conn.execute("-- a comment first\nUPDATE no_such_table SET a = 1")
        trace_id = parent.get_span_context().trace_id

        async def exported() -> bool:
            return (
                sum(s.name.startswith(("SELECT", "UPDATE")) for s in exporter.get_finished_spans())
                >= 2
            )

        await eventually(exported, within=5, what="the query spans")
    finally:
        await pool.close()
    queries = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert {s.name.split()[0] for s in queries} == {"SELECT", "UPDATE"}
    assert all(s.context.trace_id == trace_id for s in queries)
    select = next(s for s in queries if s.name.startswith("SELECT"))
    update = next(s for s in queries if s.name.startswith("UPDATE"))
    attributes = dict(select.attributes or {})
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["db.query.text"] == "SELECT $1::text"
    assert attributes["relais.service"] == "referrals"
    assert SECRET_VALUE not in str(attributes)
    assert select.parent is not None and select.parent.span_id == parent.get_span_context().span_id
    assert update.status.status_code is StatusCode.ERROR
    assert dict(update.attributes or {})["error.type"] == "UndefinedTableError"


async def test_a_query_under_a_span_not_recorded_makes_none(database_url: str) -> None:
    telemetry.setup("referrals", node_id="test", otlp_endpoint=None)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # A trace its sender sampled out: what the node works under is not recorded.
    sampled_out = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x5B8EFFF798038103D269B633813FC60C,
            span_id=0xEEE19B7EC3C1B174,
            is_remote=True,
            trace_flags=trace.TraceFlags(0),
        )
    )
    pool = await create_pool(database_url, max_size=1, service="referrals")
    try:
        with trace.use_span(sampled_out):
            await pool.fetchval("SELECT 'not recorded'")
        with telemetry.tracer.start_as_current_span("a command"):
            await pool.fetchval("SELECT 'recorded'")

        async def exported() -> bool:
            return any(s.kind is SpanKind.CLIENT for s in exporter.get_finished_spans())

        # The logger is called in query order: once the second's span is out, so would the
        # first's be.
        await eventually(exported, within=5, what="the recorded query's span")
    finally:
        await pool.close()
    texts = [
        dict(s.attributes or {})["db.query.text"]
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.CLIENT
    ]
    assert texts == ["SELECT 'recorded'"]
