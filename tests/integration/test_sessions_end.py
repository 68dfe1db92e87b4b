"""Sessions that end, on a real node (auth and dashboard services, real PostgreSQL and NATS): a
cookie copied before logout is refused after it; disabling a user, changing their password or
role ends every session of theirs at once; an administrator sees a user's open sessions (when,
not where from) and ends them, on the API and on the page; a forged session id opens nothing
and sends the browser to the login form; every end is audited."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from deploy.network import Network
from services.auth.main import service as auth_service
from services.dashboard.main import service as dashboard_service
from services.dashboard.rendering import PageRoute, render
from shared import db
from shared.auth import Principal, Role, add_user, require
from shared.auth.sessions import SessionSigner, cookie_name, new_session
from shared.settings import DEMO_SECRET, NodeSettings
from shared.web import create_app

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a new horse, a new battery"
NODE = "sanad"
COOKIE = cookie_name(NODE)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

# A page any logged-in user may open, built like the dashboard's own (this node runs no
# referrals service for the home page to read).
desk_pages = APIRouter(route_class=PageRoute)


@desk_pages.get("/test/desk")
async def desk(request: Request, principal: Annotated[Principal, Depends(require())]) -> Response:
    return render(request, "error.html", title="Desk", advice=principal.subject)


@dataclass
class Node:
    app: FastAPI
    pool: db.Pool
    admin: dict[str, str]  # amina's bearer headers

    def browser(self, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
        """A browser of its own (its own cookies); it does not follow redirects."""
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://sanad.test", cookies=cookies)

    async def audited(self, action: str) -> list[str]:
        """The objects of the node's audit records of ``action`` (from the auth outbox)."""
        rows = await self.pool.fetch("SELECT event FROM auth.outbox ORDER BY seq")
        events = [row["event"] for row in rows]
        return [e["data"]["object"] for e in events if e["data"]["action"] == action]

    async def sessions_of(self, username: str) -> list[dict[str, str]]:
        async with self.browser() as client:
            listed = await client.get(f"/api/v1/auth/users/{username}/sessions", headers=self.admin)
        assert listed.status_code == 200, listed.text
        sessions: list[dict[str, str]] = listed.json()
        return sessions


async def log_in(browser: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in on the page's form, as a person does; returns the session's cookie value."""
    form = await browser.get("/login")
    found = CSRF.search(form.text)
    assert found is not None, form.text
    done = await browser.post(
        "/login", data={"username": username, "password": password, "csrf_token": found.group(1)}
    )
    assert done.status_code == 303 and done.headers["location"] == "/", done.text
    value = browser.cookies.get(COOKIE)
    assert value is not None
    return value


async def opens_the_desk(browser: httpx.AsyncClient) -> bool:
    """Whether the browser's session opens a page, or is sent to the login form instead."""
    page = await browser.get("/test/desk")
    if page.status_code == 303:
        assert page.headers["location"] == "/login"
        return False
    assert page.status_code == 200, page.text
    return True


@asynccontextmanager
async def running(network: Network, database_url: str) -> AsyncIterator[Node]:
    settings = NodeSettings(
        node_id=NODE,
        org=NODE,
        nats_url=network.hub.nats_url,
        database_url=database_url,
        secret_key=DEMO_SECRET,
        demo=True,
    )
    app = create_app(settings, [auth_service, dashboard_service], title="sessions test")
    app.include_router(desk_pages, include_in_schema=False)
    async with app.router.lifespan_context(app):
        pool = app.state.contexts["auth"].pool
        await add_user(pool, "amina", PASSWORD, Role.ADMIN)
        await add_user(pool, "karim", PASSWORD, Role.CASEWORKER)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sanad.test") as api:
            issued = await api.post(
                "/api/v1/auth/token", json={"username": "amina", "password": PASSWORD}
            )
        assert issued.status_code == 200, issued.text
        yield Node(app, pool, {"Authorization": f"Bearer {issued.json()['access_token']}"})


@pytest.fixture
async def node(network: Network, database_url: str) -> AsyncIterator[Node]:
    async with running(network, database_url) as sanad:
        yield sanad


class TestLoggingOut:
    async def test_a_cookie_copied_before_logout_is_refused_after_it(self, node: Node) -> None:
        async with node.browser() as shared_phone:
            cookie = await log_in(shared_phone, "karim")
            async with node.browser({COOKIE: cookie}) as copy:
                assert await opens_the_desk(copy)
                desk = await shared_phone.get("/test/desk")
                found = CSRF.search(desk.text)
                assert found is not None, desk.text
                out = await shared_phone.post("/logout", data={"csrf_token": found.group(1)})
                assert out.status_code == 303 and out.headers["location"] == "/login"
                assert not await opens_the_desk(copy)
                me = await copy.get("/api/v1/auth/me")
                assert me.status_code == 401
                assert me.json()["type"] == "/problems/unauthenticated"
        assert await node.audited("session.logout") == ["user:karim"]
        assert await node.sessions_of("karim") == []


class TestAccountChanges:
    async def test_disabling_a_user_ends_their_open_session(self, node: Node) -> None:
        async with node.browser() as browser:
            await log_in(browser, "karim")
            assert await opens_the_desk(browser)
            async with node.browser() as admin:
                disabled = await admin.post("/api/v1/auth/users/karim/disable", headers=node.admin)
            assert disabled.status_code == 200, disabled.text
            assert not await opens_the_desk(browser)
        assert await node.audited("session.ended_all") == ["user:karim"]

    async def test_a_password_change_ends_every_session_of_the_user(self, node: Node) -> None:
        async with node.browser() as phone, node.browser() as computer:
            await log_in(phone, "karim")
            await log_in(computer, "karim")
            async with node.browser() as admin:
                changed = await admin.put(
                    "/api/v1/auth/users/karim/password",
                    json={"password": NEW_PASSWORD},
                    headers=node.admin,
                )
            assert changed.status_code == 204, changed.text
            assert not await opens_the_desk(phone)
            assert not await opens_the_desk(computer)
        async with node.browser() as again:
            await log_in(again, "karim", NEW_PASSWORD)
            assert await opens_the_desk(again)
        assert await node.audited("user.password_changed") == ["user:karim"]
        assert await node.audited("session.ended_all") == ["user:karim"]

    async def test_a_role_change_ends_the_users_sessions(self, node: Node) -> None:
        async with node.browser() as browser:
            await log_in(browser, "karim")
            async with node.browser() as admin:
                changed = await admin.put(
                    "/api/v1/auth/users/karim/role", json={"role": "auditor"}, headers=node.admin
                )
                assert changed.status_code == 200, changed.text
                assert changed.json()["role"] == "auditor"
                # The last administrator cannot take another role: nobody would manage the node.
                last = await admin.put(
                    "/api/v1/auth/users/amina/role", json={"role": "auditor"}, headers=node.admin
                )
                assert last.status_code == 409, last.text
            assert not await opens_the_desk(browser)
            await log_in(browser, "karim")
            me = await browser.get("/api/v1/auth/me")
            assert me.json()["roles"] == ["auditor"]
        assert await node.audited("user.role_changed") == ["user:karim"]


class TestAdministratorsView:
    async def test_an_admin_sees_when_each_session_was_opened_and_used_not_where_from(
        self, node: Node
    ) -> None:
        async with node.browser() as phone, node.browser() as computer:
            await log_in(phone, "karim")
            await log_in(computer, "karim")
            sessions = await node.sessions_of("karim")
        assert len(sessions) == 2
        for session in sessions:
            assert set(session) == {"id", "created_at", "last_seen_at", "expires_at"}
        assert await node.sessions_of("amina") == []  # her bearer token is no session

    async def test_an_admin_ending_a_session_ends_it_and_only_it(self, node: Node) -> None:
        async with node.browser() as phone, node.browser() as computer:
            await log_in(phone, "karim")
            await log_in(computer, "karim")
            newest = (await node.sessions_of("karim"))[0]["id"]  # the computer's
            async with node.browser() as admin:
                path = f"/api/v1/auth/users/karim/sessions/{newest}"
                ended = await admin.delete(path, headers=node.admin)
                assert ended.status_code == 204, ended.text
                again = await admin.delete(path, headers=node.admin)
                assert again.status_code == 404
                other = await admin.delete(
                    f"/api/v1/auth/users/amina/sessions/{newest}", headers=node.admin
                )
                assert other.status_code == 404
            assert not await opens_the_desk(computer)
            assert await opens_the_desk(phone)
        left = await node.sessions_of("karim")
        assert len(left) == 1 and left[0]["id"] != newest
        assert await node.audited("session.ended") == ["user:karim"]

    async def test_the_users_page_lists_the_sessions_and_ends_them(self, node: Node) -> None:
        async with node.browser() as admin, node.browser() as karim:
            await log_in(karim, "karim")
            await log_in(admin, "amina")
            users = await admin.get("/admin/users")
            assert 'href="/admin/users/karim"' in users.text
            page = await admin.get("/admin/users/karim")
            assert page.status_code == 200, page.text
            assert "Compte de karim" in page.text and "Sessions ouvertes" in page.text
            found = CSRF.search(page.text)
            assert found is not None
            ended = await admin.post(
                "/admin/users/karim/sessions/end", data={"csrf_token": found.group(1)}
            )
            assert ended.status_code == 303, ended.text
            after = await admin.get(ended.headers["location"])
            assert "Toutes les sessions de ce compte sont fermées." in after.text
            assert "Aucune session ouverte." in after.text
            assert not await opens_the_desk(karim)
            assert await opens_the_desk(admin)  # her own session is not karim's
        assert await node.audited("session.ended_all") == ["user:karim"]

    async def test_the_account_page_changes_the_role_and_ends_the_sessions(
        self, node: Node
    ) -> None:
        async with node.browser() as admin, node.browser() as karim:
            await log_in(karim, "karim")
            await log_in(admin, "amina")
            page = await admin.get("/admin/users/karim")
            found = CSRF.search(page.text)
            assert found is not None
            changed = await admin.post(
                "/admin/users/karim/role", data={"csrf_token": found.group(1), "role": "auditor"}
            )
            assert changed.status_code == 303, changed.text
            after = await admin.get(changed.headers["location"])
            assert "Le rôle est changé." in after.text
            assert '<dd id="current-role">Auditeur(rice)</dd>' in after.text, after.text
            assert not await opens_the_desk(karim)
            # The last administrator keeps her role, and the page says why beside the field.
            own = await admin.get("/admin/users/amina")
            found = CSRF.search(own.text)
            assert found is not None
            refused = await admin.post(
                "/admin/users/amina/role", data={"csrf_token": found.group(1), "role": "auditor"}
            )
            assert refused.status_code == 422, refused.text
            assert "dernier administrateur actif" in refused.text
        assert await node.audited("user.role_changed") == ["user:karim"]

    async def test_the_account_page_sets_a_password_and_refuses_a_short_one(
        self, node: Node
    ) -> None:
        async with node.browser() as admin, node.browser() as karim:
            await log_in(karim, "karim")
            await log_in(admin, "amina")
            page = await admin.get("/admin/users/karim")
            found = CSRF.search(page.text)
            assert found is not None
            short = await admin.post(
                "/admin/users/karim/password", data={"csrf_token": found.group(1), "password": "x"}
            )
            assert short.status_code == 422, short.text
            assert 'id="password-error"' in short.text
            assert await opens_the_desk(karim)  # nothing changed
            changed = await admin.post(
                "/admin/users/karim/password",
                data={"csrf_token": found.group(1), "password": NEW_PASSWORD},
            )
            assert changed.status_code == 303, changed.text
            assert not await opens_the_desk(karim)
        async with node.browser() as again:
            await log_in(again, "karim", NEW_PASSWORD)
            assert await opens_the_desk(again)
        assert await node.audited("user.password_changed") == ["user:karim"]

    async def test_an_unknown_account_is_a_404_page(self, node: Node) -> None:
        async with node.browser() as admin:
            await log_in(admin, "amina")
            missing = await admin.get("/admin/users/nobody")
            assert missing.status_code == 404

    async def test_only_an_admin_sees_sessions(self, node: Node) -> None:
        async with node.browser() as karim:
            await log_in(karim, "karim")
            refused = await karim.get("/api/v1/auth/users/karim/sessions")
            assert refused.status_code == 403
            async with node.browser() as admin:
                unknown = await admin.get("/api/v1/auth/users/nobody/sessions", headers=node.admin)
                assert unknown.status_code == 404


class TestForgedSessions:
    async def test_an_unknown_session_id_is_refused(self, node: Node) -> None:
        # Signed with the node's own key and naming a real account: no such session was opened.
        forged = SessionSigner(DEMO_SECRET, NODE).sign(new_session("amina"))
        async with node.browser({COOKIE: forged}) as browser:
            assert not await opens_the_desk(browser)
            users = await browser.get("/admin/users")
            assert users.status_code == 303 and users.headers["location"] == "/login"
            me = await browser.get("/api/v1/auth/me")
            assert me.status_code == 401
            assert me.json()["type"] == "/problems/unauthenticated"

    async def test_another_users_session_id_under_a_changed_name_is_refused(
        self, node: Node
    ) -> None:
        async with node.browser() as karim:
            await log_in(karim, "karim")
            cookie = karim.cookies.get(COOKIE)
        assert cookie is not None
        session = SessionSigner(DEMO_SECRET, NODE).load(cookie)
        assert session is not None
        renamed = type(session)("amina", session.csrf, session.secret)
        forged = SessionSigner(DEMO_SECRET, NODE).sign(renamed)
        async with node.browser({COOKIE: forged}) as browser:
            assert (await browser.get("/api/v1/auth/me")).status_code == 401

    async def test_a_garbled_cookie_is_sent_to_the_login_form(self, node: Node) -> None:
        async with node.browser({COOKIE: "not.a.session"}) as browser:
            assert not await opens_the_desk(browser)
