"""One trace per referral, as an operator's tracing backend sees it: the nodes export their
spans over OTLP/HTTP to a receiver in this test, and a referral made over NATS by a member
system is one trace through the sender's command, the hub and the recipient's consumer, each
node under its own ``service.name``, with the database's queries inside it."""

from __future__ import annotations

import gzip
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.conftest import client, network_of_its_own
from tests.e2e.test_referral_safety import _system_token
from tests.e2e.test_referrals import reaches, referral
from tests.waiting import eventually


@dataclass(frozen=True)
class Span:
    service_name: str
    name: str
    trace_id: str
    kind: int
    attributes: dict[str, Any]


class Collector:
    """The spans an OTLP/HTTP exporter sends (``POST /v1/traces``, protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {
                        a.key: a.value.string_value or a.value.int_value for a in span.attributes
                    }
                    with self.lock:
                        self.spans.append(
                            Span(
                                resource.get("service.name", ""),
                                span.name,
                                span.trace_id.hex(),
                                span.kind,
                                attributes | {"resource": resource},
                            )
                        )

    def of(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Collector]]:
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                collector.take(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", collector
    finally:
        server.shutdown()
        server.server_close()


async def test_a_referral_made_over_nats_is_one_trace_through_sender_hub_and_recipient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with otlp_receiver() as (endpoint, collector):
        monkeypatch.setenv("RELAIS_OTLP_ENDPOINT", endpoint)  # the nodes' processes inherit it
        async with network_of_its_own(["sanad", "amal"], "relais-trace-") as (_, creds):
            token = await _system_token(creds, "sanad", "caseworker")
            trace_id = secrets.token_hex(16)
            theirs = f"00-{trace_id}-{secrets.token_hex(8)}-01"  # the member system's span
            nc = await nats.connect(creds["nodes"]["sanad"]["nats_url"])
            try:
                reply = await nc.request(
                    "relais.cmd.referrals.create",
                    json.dumps(referral() | {"token": token}).encode(),
                    timeout=10,
                    headers={"traceparent": theirs},
                )
            finally:
                await nc.close()
            answer = json.loads(reply.data)
            assert "result" in answer, answer
            async with client(creds, "sanad", "caseworker") as sanad:
                await reaches(sanad, answer["result"]["referral_id"], "received", "the receipt")

            def where(span: Span) -> tuple[str, str]:
                return span.service_name, span.name

            def seen() -> set[tuple[str, str]]:
                return {where(s) for s in collector.of(trace_id)}

            async def whole() -> bool:
                found = seen()
                names = {service for service, _ in found}
                return {"relais-sanad", "relais-hub", "relais-amal"} <= names and any(
                    service == "relais-amal" and name.startswith("consume ")
                    for service, name in found
                )

            await eventually(whole, within=30, what=f"the spans of trace {trace_id}")
            spans = collector.of(trace_id)
            sanad_spans = [s for s in spans if s.service_name == "relais-sanad"]
            assert any(s.name == "process relais.cmd.referrals.create" for s in sanad_spans)
            assert any(
                s.service_name == "relais-hub" and s.name.startswith("consume ") for s in spans
            ), seen()
            queries = [s for s in spans if s.attributes.get("db.system.name") == "postgresql"]
            assert {s.service_name for s in queries} >= {"relais-sanad", "relais-amal"}, seen()
            assert any(s.attributes.get("relais.service") == "referrals" for s in queries)
            assert all(
                s.attributes["resource"]["service.name"] == s.service_name
                and s.service_name.startswith("relais-")
                for s in spans
            )
