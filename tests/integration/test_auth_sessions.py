"""Page sessions on a real PostgreSQL: the cookie opens pages, state-changing requests need the
session's CSRF token, and a session ends when the account is disabled or the user logs out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Form, Request, Response

from shared.auth import (
    Principal,
    Role,
    add_user,
    authenticate,
    check_csrf,
    csrf_token,
    disable_user,
    login_session,
    logout_session,
    require,
)
from shared.auth.sessions import SessionSigner, cookie_name, new_session
from shared.service import context_of
from shared.settings import DEMO_SECRET
from tests.integration.test_auth_api import PASSWORD, Node, bearer, problem_of, running_node

pages = APIRouter(prefix="/pages")
Anyone = Annotated[Principal, Depends(require())]


@pages.post("/login")
async def log_in(
    request: Request,
    response: Response,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> dict[str, str]:
    context = context_of("auth")(request)
    user = await authenticate(context.pool, username, password)
    return {"csrf": await login_session(response, user, context.pool, context.settings)}


@pages.get("/home")
async def home(request: Request, principal: Anyone) -> dict[str, str]:
    return {"user": principal.subject, "csrf": csrf_token(request)}


@pages.post("/notes")
async def add_note(principal: Anyone, note: Annotated[str, Form()]) -> dict[str, str]:
    return {"saved": note, "by": principal.subject}


@pages.post("/logout", dependencies=[Depends(check_csrf)])
async def log_out(request: Request, response: Response) -> dict[str, bool]:
    context = context_of("auth")(request)
    await logout_session(request, response, context.pool, context.settings)
    return {"logged_out": True}


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    async with running_node(database_url, routers=(pages,)) as running:
        await add_user(running.pool, "amina", PASSWORD, Role.ADMIN)
        await add_user(running.pool, "karim", PASSWORD, Role.CASEWORKER)
        yield running


async def open_session(node: Node, username: str = "amina") -> str:
    """Log in through the page form, as a browser would; returns the session's CSRF token."""
    response = await node.client.post(
        "/pages/login", data={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert cookie_name("sanad") in node.client.cookies
    csrf: str = response.json()["csrf"]
    return csrf


class TestOpeningPages:
    async def test_a_session_opens_pages_without_any_token(self, node: Node) -> None:
        csrf = await open_session(node)
        home = await node.client.get("/pages/home")
        assert home.status_code == 200
        assert home.json() == {"user": "amina", "csrf": csrf}

    async def test_pages_refuse_a_browser_without_a_session(self, node: Node) -> None:
        home = await node.client.get("/pages/home")
        assert home.status_code == 401
        assert problem_of(home)["type"] == "/problems/unauthenticated"

    async def test_a_forged_cookie_opens_nothing(self, node: Node) -> None:
        node.client.cookies.set(cookie_name("sanad"), "eyJ1IjoiYW1pbmEifQ.forged.signature")
        assert (await node.client.get("/pages/home")).status_code == 401

    async def test_a_session_of_another_node_sharing_the_secret_opens_nothing(
        self, node: Node
    ) -> None:
        # The demo's hub has an "amina" too, signs with the same secret, and shares the host.
        hub_cookie = SessionSigner(DEMO_SECRET, "hub").sign(new_session("amina"))
        node.client.cookies.set(cookie_name("sanad"), hub_cookie)
        assert (await node.client.get("/pages/home")).status_code == 401

    async def test_the_session_uses_the_accounts_current_role(self, node: Node) -> None:
        await open_session(node, "karim")
        assert (await node.client.get("/api/v1/auth/users")).status_code == 403


class TestCsrf:
    async def test_a_form_without_the_csrf_token_is_refused(self, node: Node) -> None:
        await open_session(node)
        refused = await node.client.post("/pages/notes", data={"note": "call back"})
        assert refused.status_code == 403
        assert problem_of(refused)["field"] == "csrf_token"

    async def test_a_form_with_a_wrong_csrf_token_is_refused(self, node: Node) -> None:
        await open_session(node)
        refused = await node.client.post(
            "/pages/notes", data={"note": "call back", "csrf_token": new_session("x").csrf}
        )
        assert refused.status_code == 403

    async def test_a_form_carrying_the_csrf_token_is_accepted(self, node: Node) -> None:
        csrf = await open_session(node)
        saved = await node.client.post(
            "/pages/notes", data={"note": "call back", "csrf_token": csrf}
        )
        assert saved.status_code == 200
        assert saved.json() == {"saved": "call back", "by": "amina"}

    async def test_a_script_may_send_the_token_as_a_header(self, node: Node) -> None:
        csrf = await open_session(node)
        created = await node.client.post(
            "/api/v1/auth/users",
            json={"username": "salma", "password": PASSWORD, "role": "caseworker"},
            headers={"X-CSRF-Token": csrf},
        )
        assert created.status_code == 201

    async def test_the_json_api_refuses_a_cookie_request_without_the_token(
        self, node: Node
    ) -> None:
        await open_session(node)
        refused = await node.client.post(
            "/api/v1/auth/users",
            json={"username": "salma", "password": PASSWORD, "role": "caseworker"},
        )
        assert refused.status_code == 403
        assert problem_of(refused)["field"] == "csrf_token"

    async def test_a_bearer_request_needs_no_csrf_token(self, node: Node) -> None:
        token = await node.log_in("amina")
        await open_session(node)  # a cookie comes along too; the bearer token decides
        created = await node.client.post(
            "/api/v1/auth/users",
            json={"username": "salma", "password": PASSWORD, "role": "caseworker"},
            headers=bearer(token),
        )
        assert created.status_code == 201

    async def test_check_csrf_guards_a_route_that_needs_no_role(self, node: Node) -> None:
        csrf = await open_session(node)
        assert (await node.client.post("/pages/logout")).status_code == 403
        assert (await node.client.get("/pages/home")).status_code == 200
        done = await node.client.post("/pages/logout", headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200


class TestEndingSessions:
    async def test_logging_out_ends_the_session(self, node: Node) -> None:
        csrf = await open_session(node)
        await node.client.post("/pages/logout", data={"csrf_token": csrf})
        assert cookie_name("sanad") not in node.client.cookies
        assert (await node.client.get("/pages/home")).status_code == 401

    async def test_a_disabled_users_session_ends_at_once(self, node: Node) -> None:
        await open_session(node, "karim")
        assert (await node.client.get("/pages/home")).status_code == 200
        await disable_user(node.pool, "karim")
        ended = await node.client.get("/pages/home")
        assert ended.status_code == 401
        assert problem_of(ended)["type"] == "/problems/unauthenticated"
