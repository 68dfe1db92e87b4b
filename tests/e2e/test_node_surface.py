"""What every node shows the world: health, readiness, documents, metrics, and problem details."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from tests.contract_tools import asyncapi_errors, needs_asyncapi_parser
from tests.e2e.conftest import client


async def test_every_node_is_healthy_and_ready(running_network: dict[str, Any]) -> None:
    for node in running_network["nodes"]:
        async with client(running_network, node) as anonymous:
            assert (await anonymous.get("/healthz")).json()["status"] == "ok"
            ready = await anonymous.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert all(ready.json()["checks"].values())


async def test_the_api_and_event_documents_are_published(running_network: dict[str, Any]) -> None:
    async with client(running_network, "sanad") as anonymous:
        openapi = (await anonymous.get("/openapi.json")).json()
        assert "/api/v1/directory/organisations" in openapi["paths"]
        assert "/api/v1/auth/token" in openapi["paths"]
        asyncapi = (await anonymous.get("/asyncapi.json")).json()
        addresses = {c["address"] for c in asyncapi["channels"].values()}
        assert "relais.net.{sender}.{recipient}.organisation.published" in addresses
        assert "relais.net.{sender}.{recipient}.referral.offered" in addresses
        # The request/reply ingress for member systems, with its request and reply schemas.
        create = asyncapi["channels"]["relais_cmd_referrals_create"]
        assert create["address"] == "relais.cmd.referrals.create"
        request = asyncapi["components"]["messages"]["relais_cmd_referrals_create_request"]
        schema = request["payload"]["$ref"].removeprefix("#/components/schemas/")
        assert {"token", "to_org", "payload", "idempotency_key"} <= set(
            asyncapi["components"]["schemas"][schema]["properties"]
        )
        assert "relais.cmd.directory.match" in addresses


@needs_asyncapi_parser
async def test_every_nodes_documents_pass_the_reference_tools(
    running_network: dict[str, Any],
) -> None:
    """What a developer's code generator reads, as each node serves it (hub and members)."""
    for node in running_network["nodes"]:
        async with client(running_network, node) as anonymous:
            asyncapi = (await anonymous.get("/asyncapi.json")).json()
            openapi = (await anonymous.get("/openapi.json")).json()
        assert asyncapi_errors(asyncapi) == [], node
        assert "relais_cmd_referrals_list" in asyncapi["channels"], node
        # Its own nats-server, where the clients of the credentials file connect (no login).
        (server,) = asyncapi["servers"].values()
        assert server["protocol"] == "nats", node
        address = running_network["nodes"][node]["nats_url"].rsplit("@", 1)[-1]
        assert address.endswith(server["host"]), (node, server, address)
        assert "@" not in server["host"]
        validate(openapi)


async def test_metrics_count_requests_by_route_not_by_id(running_network: dict[str, Any]) -> None:
    async with client(running_network, "sanad", "caseworker") as caseworker:
        await caseworker.get("/api/v1/directory/organisations/amal")
        metrics = (await caseworker.get("/metrics")).text
    assert 'route="/api/v1/directory/organisations/{org_id}"' in metrics
    assert "/organisations/amal" not in metrics


async def test_an_unknown_organisation_is_a_problem_document_naming_the_field(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "sanad", "caseworker") as caseworker:
        response = await caseworker.get("/api/v1/directory/organisations/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["type"], body["field"]) == ("/problems/not-found", "org_id")


async def test_logging_in_gives_a_token_that_works(running_network: dict[str, Any]) -> None:
    focal = next(u for u in running_network["nodes"]["amal"]["users"] if u["role"] == "focal_point")
    async with client(running_network, "amal") as anonymous:
        login = await anonymous.post(
            "/api/v1/auth/token",
            json={"username": focal["username"], "password": focal["password"]},
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = await anonymous.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["org"] == "amal"
