"""The edge of every node: unstorable text, oversized bodies and headers refused before any
handler runs, and the security headers on every response."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from shared import inputs, intake, problems
from shared.settings import DEMO_SECRET, NodeSettings

SETTINGS = NodeSettings(
    node_id="sanad",
    org="sanad",
    nats_url="nats://127.0.0.1:1",
    database_url="postgresql://x@127.0.0.1:1/x",
    secret_key=DEMO_SECRET,
    demo=True,
)
calls: list[str] = []


class Body(BaseModel):
    name: str


def make_app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.post("/api/v1/auth/token")
    async def token(body: Body) -> dict[str, str]:
        calls.append("token")
        return {"name": body.name}

    @app.get("/api/v1/directory/services/{service_id}")
    async def service(service_id: str, q: str = "") -> dict[str, str]:
        calls.append("service")
        return {"id": service_id, "q": q}

    intake.install(app, SETTINGS)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    calls.clear()
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "bell\x07", "del\x7f"])
def test_text_postgresql_cannot_store_is_unstorable(text: str) -> None:
    assert inputs.unstorable(text)


@pytest.mark.parametrize("text", ["", "Réseau Relais", "ligne\nligne\ttab\r", "شبكة", "😀"])
def test_ordinary_text_is_stored(text: str) -> None:
    assert not inputs.unstorable(text)


def test_the_offending_field_is_named_by_its_path() -> None:
    value = {"a": "ok", "b": [{"c": "ok"}, {"d": "x\x00"}]}
    assert inputs.first_offending(value) == "b.1.d"
    assert inputs.first_offending({"ok": ["fine"]}) is None


async def test_a_nul_in_a_json_body_is_refused_before_the_handler(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/auth/token", json={"name": "ad\x00min"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "name"
    assert response.json()["errors"][0]["field"] == "name"
    assert calls == []


async def test_a_nul_in_the_query_or_path_is_refused_naming_the_parameter(
    client: httpx.AsyncClient,
) -> None:
    query = await client.get("/api/v1/directory/services/s1?q=a%00b")
    assert (query.status_code, query.json()["field"]) == (422, "q")
    path = await client.get("/api/v1/directory/services/s%001")
    assert (path.status_code, path.json()["field"]) == (422, "service_id")
    assert calls == []
    fine = await client.get("/api/v1/directory/services/s1?q=caf%C3%A9")
    assert fine.json() == {"id": "s1", "q": "café"}


async def test_a_body_over_the_routes_limit_is_413_even_when_streamed(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"name": "' + b"x" * 5000 + b'"}'
    declared = await client.post(
        "/api/v1/auth/token", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["limit"] == 4096

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1000):  # 1 MB if read whole; cut off after the first few kB
            yield b"x" * 1024

    streamed = await client.post(
        "/api/v1/auth/token", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert calls == []


async def test_too_many_or_too_large_headers_are_431(client: httpx.AsyncClient) -> None:
    many = {f"x-h{i}": "v" for i in range(120)}
    assert (await client.get("/api/v1/directory/services/s1", headers=many)).status_code == 431
    large = {"x-big": "v" * 40_000}
    assert (await client.get("/api/v1/directory/services/s1", headers=large)).status_code == 431


async def test_every_response_has_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/v1/directory/services/s1"),
        await client.get("/nowhere"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert "camera=()" in response.headers["permissions-policy"]
        assert "server" not in response.headers


async def test_the_body_limit_is_declared_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths["/api/v1/auth/token"]["post"]["x-body-limit"] == 4096
    assert paths["/api/v1/directory/services/{service_id}"]["get"]["x-body-limit"] == 65536
