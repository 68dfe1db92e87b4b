"""The pages read the node's reference data once per app: the cache lives on the app's state,
so a second app (another node in the same process) asks its own API, never the first's copy."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from services.dashboard.node_api import NodeApi


def node(name: str) -> tuple[FastAPI, list[str]]:
    """An app serving reference data that names it, and the list of the reads it answered."""
    app = FastAPI()
    reads: list[str] = []

    @app.get("/api/v1/referrals/categories")
    async def categories() -> dict[str, str]:
        reads.append(name)
        return {"node": name}

    @app.get("/page")
    async def page(request: Request) -> list[object]:
        api = NodeApi(request)  # a read without parameters (``get`` always passes some)
        return [await api.call("GET", "/api/v1/referrals/categories") for _ in range(2)]

    return app, reads


async def open_page(app: FastAPI) -> object:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        response = await client.get("/page", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200
    return response.json()


async def test_an_app_reads_its_reference_data_once_and_another_app_reads_its_own() -> None:
    first, first_reads = node("amal")
    second, second_reads = node("sanad")
    assert await open_page(first) == [{"node": "amal"}, {"node": "amal"}]
    assert await open_page(first) == [{"node": "amal"}, {"node": "amal"}]
    assert first_reads == ["amal"]
    assert await open_page(second) == [{"node": "sanad"}, {"node": "sanad"}]
    assert second_reads == ["sanad"]
