"""Who a node's spans say they come from: the node, with the service as an attribute."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry


def test_every_process_of_a_node_reports_as_the_node() -> None:
    referrals = telemetry.resource("referrals", node_id="sanad").attributes
    directory = telemetry.resource("directory+audit", node_id="sanad").attributes
    other_node = telemetry.resource("referrals", node_id="amal").attributes
    assert referrals["service.name"] == directory["service.name"] == "relais-sanad"
    assert other_node["service.name"] == "relais-amal"
    assert (referrals["relais.service"], directory["relais.service"]) == (
        "referrals",
        "directory+audit",
    )


def test_query_spans_are_made_only_where_spans_go_somewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A node with no OTLP endpoint records its spans for their ids and drops them: a query's
    # span there would be work for nothing (shared.telemetry.query_logger skips it).
    provider = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    assert not telemetry._exported()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert telemetry._exported()
