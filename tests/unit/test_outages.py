"""A lost database or broker answers 503 with Retry-After (and a typed ``unavailable`` reply over
NATS), saying which dependency and nothing of its internals; a bug still answers 500."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import nats.errors
import pytest
from fastapi import FastAPI

from shared import outages, problems
from shared.bus import respond
from shared.errors import Unavailable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _connect_to_nothing() -> None:
    # A real refusal from a real client: the error a node sees while its PostgreSQL is down.
    await asyncpg.connect(f"postgresql://relais@127.0.0.1:{_closed_port()}/relais", timeout=2)


async def _connect_to_missing_socket() -> None:
    # PostgreSQL on a Unix socket removes the socket file when it stops.
    await asyncpg.connect(user="relais", database="relais", host="/nonexistent-relais-socket")


def _raiser(exc: Exception) -> Callable[[], Awaitable[None]]:
    async def raise_it() -> None:
        raise exc

    return raise_it


OUTAGES: dict[str, tuple[Callable[[], Awaitable[None]], str]] = {
    "refused": (_connect_to_nothing, "database"),
    "socket-gone": (_connect_to_missing_socket, "database"),
    "starting-up": (
        _raiser(asyncpg.CannotConnectNowError("the database system is starting up")),
        "database",
    ),
    "shutting-down": (
        _raiser(asyncpg.AdminShutdownError("terminating connection due to administrator")),
        "database",
    ),
    "lost": (_raiser(asyncpg.ConnectionDoesNotExistError("connection was closed")), "database"),
    "too-many": (_raiser(asyncpg.TooManyConnectionsError("too many clients")), "database"),
    "closed": (_raiser(asyncpg.InterfaceError("connection is closed")), "database"),
    "cut-short": (
        _raiser(
            asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
        ),
        "database",
    ),
    "nats-closed": (_raiser(nats.errors.ConnectionClosedError()), "broker"),
    "nats-no-responders": (_raiser(nats.errors.NoRespondersError()), "broker"),
    "domain": (_raiser(Unavailable("the hub did not answer")), "unavailable"),
}
BUGS: dict[str, Callable[[], Awaitable[None]]] = {
    "key-error": _raiser(KeyError("x")),
    "unique": _raiser(asyncpg.UniqueViolationError("duplicate key")),
    "misuse": _raiser(asyncpg.InterfaceError("another operation is in progress")),
    "own-file": _raiser(FileNotFoundError("/etc/relais/missing.json")),
}


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/outage/{name}")
    async def outage(name: str) -> None:
        await OUTAGES[name][0]()

    @app.get("/bug/{name}")
    async def bug(name: str) -> None:
        await BUGS[name]()

    return app


async def _get(path: str) -> httpx.Response:
    # raise_app_exceptions=False: the client sees what a server would send after a crash.
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        return await client.get(path)


@pytest.mark.parametrize("name", sorted(OUTAGES))
async def test_an_outage_answers_503_with_retry_after_and_which_dependency(name: str) -> None:
    response = await _get(f"/outage/{name}")
    assert response.status_code == 503
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    assert int(response.headers["retry-after"]) == outages.RETRY_AFTER_SECONDS
    body = response.json()
    assert body["type"].endswith("/problems/unavailable")
    expected = OUTAGES[name][1]
    if expected != "unavailable":
        assert body["dependency"] == expected
        assert body["title"] == outages.Dependency(expected).heading
    # No internals: no address, no socket path, no exception class, no server message.
    text = response.text
    for leak in ("127.0.0.1", "nonexistent", "Error", "starting up", "clients", "closed"):
        assert leak not in text, leak


@pytest.mark.parametrize("name", sorted(BUGS))
async def test_a_bug_is_still_a_500(name: str) -> None:
    response = await _get(f"/bug/{name}")
    assert response.status_code == 500
    assert response.json()["type"] == "/problems/internal"
    assert "retry-after" not in response.headers


def test_a_wrapper_raised_while_handling_an_outage_is_one() -> None:
    try:
        try:
            raise asyncpg.CannotConnectNowError("starting up")
        except asyncpg.PostgresError as exc:
            raise RuntimeError("lookup failed") from exc
    except RuntimeError as wrapper:
        assert outages.unavailable(wrapper) is outages.Dependency.DATABASE


def test_the_outbox_waits_out_what_the_edges_call_an_outage() -> None:
    from shared import outbox

    assert outbox.DATABASE_OR_BROKER_DOWN is outages.DATABASE_OR_BROKER_DOWN
    for exc in (
        asyncpg.CannotConnectNowError("x"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionRefusedError(),
        TimeoutError(),
    ):
        assert isinstance(exc, outages.DATABASE_OR_BROKER_DOWN)


async def _reply_to(exc: Exception) -> dict[str, Any]:
    async def handler(_: dict[str, Any]) -> Any:
        raise exc

    return await respond(handler, json.dumps({"token": "x"}).encode())


async def test_a_nats_command_answers_a_typed_unavailable_error_with_a_retry_hint() -> None:
    reply = await _reply_to(asyncpg.CannotConnectNowError("the database system is starting up"))
    error = reply["error"]
    assert error["type"] == "/problems/unavailable"
    assert error["status"] == 503
    assert error["dependency"] == "database"
    assert error["retry_after"] == outages.RETRY_AFTER_SECONDS
    assert "starting up" not in json.dumps(reply)


async def test_a_nats_command_refused_connection_is_unavailable_too() -> None:
    async def handler(_: dict[str, Any]) -> Any:
        await _connect_to_nothing()

    reply = await respond(handler, b"{}")
    assert reply["error"]["type"] == "/problems/unavailable"
    assert reply["error"]["dependency"] == "database"


async def test_a_nats_command_bug_is_still_internal() -> None:
    reply = await _reply_to(asyncpg.UniqueViolationError("duplicate key"))
    assert reply["error"]["type"] == "/problems/internal"
    assert "retry_after" not in reply["error"]


def test_the_pages_tell_an_api_503_from_a_refusal_of_their_fields() -> None:
    from services.dashboard.node_api import ApiRefused, ApiUnavailable, _raise_for
    from services.dashboard.rendering import outage_of

    down = httpx.Response(
        503,
        json={"type": "/problems/unavailable", "detail": "x", "dependency": "database"},
        headers={"Retry-After": "5"},
    )
    with pytest.raises(ApiUnavailable) as raised:
        _raise_for(down)
    assert not isinstance(raised.value, ApiRefused)  # no form shows it beside a field
    assert outage_of(raised.value) is outages.Dependency.DATABASE
    refused = httpx.Response(422, json={"type": "/problems/invalid", "detail": "x", "field": "a"})
    with pytest.raises(ApiRefused) as raised_refusal:
        _raise_for(refused)
    assert outage_of(raised_refusal.value) is None
