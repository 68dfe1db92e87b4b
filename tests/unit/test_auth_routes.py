"""Every route of the auth API states who may call it; only logging in is public."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI

from services.auth.main import service
from shared.auth import Principal, Role, guarded_routes, require


def route_table() -> dict[tuple[str, str], list[frozenset[Role]]]:
    app = FastAPI()
    app.include_router(service.router, prefix="/api/v1/auth")
    return {
        (route.method, route.path): [r.roles for r in route.requirements]
        for route in guarded_routes(app.routes)
    }


def test_logging_in_is_the_only_public_route() -> None:
    public = [key for key, requirements in route_table().items() if not requirements]
    assert public == [("POST", "/api/v1/auth/token")]


def test_accounts_and_tokens_are_managed_by_admins_only() -> None:
    table = route_table()
    managed = [
        key for key in table if key[1].startswith(("/api/v1/auth/users", "/api/v1/auth/tokens"))
    ]
    assert sorted(managed) == [
        ("DELETE", "/api/v1/auth/tokens/{token_id}"),
        ("DELETE", "/api/v1/auth/users/{username}/sessions"),
        ("DELETE", "/api/v1/auth/users/{username}/sessions/{session_id}"),
        ("GET", "/api/v1/auth/tokens"),
        ("GET", "/api/v1/auth/users"),
        ("GET", "/api/v1/auth/users/{username}/sessions"),
        ("POST", "/api/v1/auth/tokens"),
        ("POST", "/api/v1/auth/users"),
        ("POST", "/api/v1/auth/users/{username}/disable"),
        ("PUT", "/api/v1/auth/users/{username}/password"),
        ("PUT", "/api/v1/auth/users/{username}/role"),
    ]
    assert all(table[key] == [{Role.ADMIN}] for key in managed)


def test_anyone_authenticated_may_ask_who_they_are() -> None:
    assert route_table()[("GET", "/api/v1/auth/me")] == [frozenset()]


async def current_focal_point(
    principal: Annotated[Principal, Depends(require(Role.FOCAL_POINT))],
) -> Principal:
    return principal


def test_a_guard_inside_another_dependency_is_found_too() -> None:
    router = APIRouter()

    @router.get("/inbox")
    async def inbox(_: Annotated[Principal, Depends(current_focal_point)]) -> list[str]:
        return []

    app = FastAPI()
    app.include_router(router, prefix="/api/v1/referrals")
    [route] = guarded_routes(app.routes)
    assert (route.method, route.path) == ("GET", "/api/v1/referrals/inbox")
    assert [r.roles for r in route.requirements] == [{Role.FOCAL_POINT}]
