"""The HTTP metrics count the requests people and member systems make, once each: not the
probes' and scrapes' (``/healthz``, ``/readyz``, ``/metrics``), and not a page's in-process
calls to the node's own API, which would count one click two or three times."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import REGISTRY

from shared.service import Service, ServiceContext
from shared.settings import DEMO_SECRET, NodeSettings
from shared.web import create_app

router = APIRouter()


@router.get("/things/{thing_id}")
async def thing(thing_id: str) -> dict[str, str]:
    return {"id": thing_id}


@router.get("/page")
async def page(request: Request) -> dict[str, object]:
    """As the dashboard's pages do (services/dashboard/node_api.py): the API, in-process."""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        first = await client.get("/api/v1/probe/things/a")
        second = await client.get("/api/v1/probe/things/b")
    return {"things": [first.json(), second.json()]}


@router.get("/broken")
async def broken() -> None:
    raise RuntimeError("a bug")


async def _start(ctx: ServiceContext) -> None:
    return None


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    settings = NodeSettings(
        node_id="amal",
        org="amal",
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        secret_key=DEMO_SECRET,
        demo=True,
    )
    service = Service(name="probe", router=router, migrations=None, start=_start)
    yield create_app(settings, [service], title="metrics test")  # no lifespan: no servers


def requests_of(route: str, status: str = "200") -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("relais_http_requests_total", labels) or 0.0


def timed(route: str) -> float:
    labels = {"method": "GET", "route": route}
    return REGISTRY.get_sample_value("relais_http_request_seconds_count", labels) or 0.0


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_probes_and_scrapes_are_not_counted_as_requests(app: FastAPI) -> None:
    before = {route: (requests_of(route), timed(route)) for route in ("/healthz", "/metrics")}
    assert (await get(app, "/healthz")).status_code == 200
    assert (await get(app, "/metrics")).status_code == 200
    assert (await get(app, "/metrics")).status_code == 200
    for route, counted in before.items():
        assert (requests_of(route), timed(route)) == counted, route


async def test_a_request_is_counted_once_under_its_route_template(app: FastAPI) -> None:
    route = "/api/v1/probe/things/{thing_id}"
    before = requests_of(route), timed(route)
    assert (await get(app, "/api/v1/probe/things/x1")).status_code == 200
    assert (requests_of(route), timed(route)) == (before[0] + 1, before[1] + 1)


async def test_a_pages_in_process_api_calls_are_not_counted_again(app: FastAPI) -> None:
    page_before = requests_of("/api/v1/probe/page")
    inner_before = requests_of("/api/v1/probe/things/{thing_id}")
    answer = await get(app, "/api/v1/probe/page")
    assert answer.status_code == 200 and len(answer.json()["things"]) == 2
    assert requests_of("/api/v1/probe/page") == page_before + 1
    assert requests_of("/api/v1/probe/things/{thing_id}") == inner_before


async def test_a_handler_that_raises_is_counted_as_a_500(app: FastAPI) -> None:
    before = requests_of("/api/v1/probe/broken", "500")
    assert (await get(app, "/api/v1/probe/broken")).status_code == 500
    assert requests_of("/api/v1/probe/broken", "500") == before + 1
