"""Every route of a node, walked from its route table: without credentials it answers 401, with
a role it does not admit 403. A new route cannot forget to say who may call it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from deploy.node import build_app
from shared.auth import GuardedRoute, guarded_routes
from shared.settings import DEMO_SECRET, NodeSettings
from tests.e2e.conftest import client

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/asyncapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs"),
    ("HEAD", "/docs/oauth2-redirect"),
    ("HEAD", "/openapi.json"),
    ("POST", "/api/v1/auth/token"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),  # checks the session's CSRF token itself
    ("GET", "/lang/{code}"),
}
ROLES_ON = {
    "hub": ("coordinator", "auditor", "admin"),
    "sanad": ("focal_point", "caseworker", "admin"),
}


def route_table() -> list[GuardedRoute]:
    settings = NodeSettings(
        node_id="sanad",
        org="sanad",
        nats_url="nats://unused",
        database_url="postgresql://unused",
        secret_key=DEMO_SECRET,
        demo=True,
    )
    return list(guarded_routes(build_app(settings).routes))


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)


def test_every_route_but_the_public_ones_requires_credentials() -> None:
    unguarded = {(r.method, r.path) for r in route_table() if not r.requirements}
    assert unguarded <= PUBLIC, f"routes with no role requirement: {sorted(unguarded - PUBLIC)}"


@pytest.mark.parametrize(
    "route", [r for r in route_table() if r.requirements], ids=lambda r: f"{r.method} {r.path}"
)
async def test_a_route_refuses_anonymous_callers_and_roles_it_does_not_admit(
    route: GuardedRoute, running_network: dict[str, Any]
) -> None:
    body: dict[str, Any] | None = {} if route.method in {"POST", "PUT", "PATCH"} else None
    async with client(running_network, "sanad") as anonymous:
        response = await anonymous.request(route.method, concrete(route.path), json=body)
        if route.path.startswith("/api/"):
            assert response.status_code == 401, response.text
            assert response.headers["content-type"] == "application/problem+json"
        else:  # a page sends the visitor to the login form
            assert (response.status_code, response.headers["location"]) == (303, "/login")

    admitted = set().union(*(r.roles for r in route.requirements))
    for node, roles in ROLES_ON.items():
        for role in roles:
            if admitted and role not in admitted:
                async with client(running_network, node, role) as outsider:
                    response = await outsider.request(route.method, concrete(route.path), json=body)
                assert response.status_code == 403, f"{role} on {node}: {response.status_code}"
