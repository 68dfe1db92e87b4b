"""The dashboard's pages on a real node (auth and dashboard services, real PostgreSQL and NATS),
seen as a browser sees them: in French first, in Arabic right to left, logging in and out."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, Request, Response

from deploy.network import Network
from services.auth.main import service as auth_service
from services.dashboard.main import service as dashboard_service
from services.dashboard.rendering import PageRoute, render
from shared.auth import Principal, Role, add_user, require
from shared.auth.sessions import cookie_name
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings
from shared.web import create_app

PASSWORD = "correct horse battery"
NODE = "hub"
SESSION_COOKIE = cookie_name(NODE)

# A page only administrators may open, built like the dashboard's own: the 403 page needs one.
admin_pages = APIRouter(route_class=PageRoute)


@admin_pages.get("/test/accounts")
async def accounts_page(
    request: Request, _: Annotated[Principal, Depends(require(Role.ADMIN))]
) -> Response:
    return render(request, "error.html", title="Home", advice="Home")


@dataclass
class Browser:
    """A browser on the node's pages: it keeps cookies, and does not follow redirects."""

    client: httpx.AsyncClient

    async def get(self, path: str, **headers: str) -> httpx.Response:
        return await self.client.get(path, headers=headers)

    async def log_in(self, username: str = "amina", password: str = PASSWORD) -> httpx.Response:
        form = await self.client.get("/login")
        return await self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token_in(form)},
        )

    async def choose(self, lang: str, back: str = "/login") -> httpx.Response:
        return await self.client.get(f"/lang/{lang}", params={"next": back})


def token_in(page: httpx.Response) -> str:
    """The CSRF token of the page's form, as a browser would send it back."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def html_of(response: httpx.Response) -> str:
    """The page's HTML with its character references resolved, as a reader would see its text."""
    assert response.headers["content-type"].startswith("text/html"), response.text
    return html.unescape(response.text)


@pytest.fixture
async def browser(network: Network, database_url: str) -> AsyncIterator[Browser]:
    settings = NodeSettings(
        node_id=NODE,
        org="secretariat",
        role=NodeRole.SECRETARIAT,
        nats_url=network.hub.nats_url,
        database_url=database_url,
        secret_key=DEMO_SECRET,
        demo=True,
    )
    app = create_app(settings, [auth_service, dashboard_service], title="dashboard test")
    app.include_router(admin_pages, include_in_schema=False)
    async with app.router.lifespan_context(app):
        pool = app.state.contexts["auth"].pool
        await add_user(pool, "amina", PASSWORD, Role.CASEWORKER, display_name="Amina Benali")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Browser(client)


class TestLanguages:
    async def test_the_login_page_speaks_french_by_default(self, browser: Browser) -> None:
        page = html_of(await browser.get("/login"))
        assert '<html lang="fr" dir="ltr">' in page
        assert "Nom d'utilisateur" in page
        assert "Se connecter" in page

    async def test_the_browsers_language_is_followed_when_none_was_chosen(
        self, browser: Browser
    ) -> None:
        response = await browser.get("/login", **{"Accept-Language": "en-GB,en;q=0.9"})
        assert '<html lang="en" dir="ltr">' in html_of(response)
        assert response.headers["content-language"] == "en"
        assert "Username" in response.text

    async def test_arabic_pages_are_written_right_to_left(self, browser: Browser) -> None:
        page = html_of(await browser.get("/login", **{"Accept-Language": "ar-MA"}))
        assert '<html lang="ar" dir="rtl">' in page
        assert "تسجيل الدخول" in page

    async def test_choosing_a_language_returns_to_the_same_page_and_is_remembered(
        self, browser: Browser
    ) -> None:
        chosen = await browser.choose("ar", back="/login?from=menu")
        assert chosen.status_code == 303
        assert chosen.headers["location"] == "/login?from=menu"
        # The browser's own preference no longer matters: the choice was remembered.
        page = html_of(await browser.get("/login", **{"Accept-Language": "en"}))
        assert '<html lang="ar" dir="rtl">' in page
        await browser.log_in()
        assert "مرحبًا، Amina Benali" in html_of(await browser.get("/"))

    async def test_the_language_switcher_links_back_to_the_page_it_is_on(
        self, browser: Browser
    ) -> None:
        page = html_of(await browser.get("/login"))
        assert 'href="/lang/ar?next=/login" lang="ar" dir="rtl"' in page
        assert ">العربية</a>" in page

    @pytest.mark.parametrize(
        "elsewhere", ["https://evil.example/", "//evil.example/", "/\\evil.example", "login"]
    )
    async def test_the_language_switcher_never_leads_to_another_site(
        self, browser: Browser, elsewhere: str
    ) -> None:
        response = await browser.choose("en", back=elsewhere)
        assert response.headers["location"] == "/"

    async def test_an_unknown_language_gets_a_page_not_found_in_html(
        self, browser: Browser
    ) -> None:
        response = await browser.choose("xx")
        assert response.status_code == 404
        assert "Page introuvable" in html_of(response)
        assert "relais_lang" not in response.headers.get("set-cookie", "")


class TestLoggingIn:
    async def test_a_visitor_who_is_not_logged_in_is_sent_to_the_login_form(
        self, browser: Browser
    ) -> None:
        response = await browser.get("/")
        assert response.status_code == 303
        assert response.headers["location"] == "/login"

    async def test_a_wrong_password_is_explained_beside_the_field_keeping_the_username(
        self, browser: Browser
    ) -> None:
        response = await browser.log_in("amina", "not the password")
        assert response.status_code == 401
        page = html_of(response)
        message = "Nom d'utilisateur ou mot de passe incorrect."
        assert page.index('<label for="password">') < page.index(message)
        assert page.index(message) < page.index('id="password"')
        assert 'aria-describedby="password-error"' in page
        assert 'name="username" value="amina"' in page
        assert SESSION_COOKIE not in browser.client.cookies

    async def test_the_error_is_in_the_visitors_language(self, browser: Browser) -> None:
        await browser.choose("ar")
        page = html_of(await browser.log_in("amina", "not the password"))
        assert "اسم المستخدم أو كلمة المرور غير صحيحة." in page

    async def test_each_empty_field_is_named(self, browser: Browser) -> None:
        response = await browser.log_in("", "")
        assert response.status_code == 400
        page = html_of(response)
        assert "Saisissez votre nom d'utilisateur." in page
        assert "Saisissez votre mot de passe." in page

    async def test_a_login_form_not_served_to_this_browser_is_refused(
        self, browser: Browser
    ) -> None:
        # Another site posting the login form has no token, or one minted for another browser.
        other = await browser.client.get("/login")
        browser.client.cookies.clear()
        for token in ("", token_in(other)):
            response = await browser.client.post(
                "/login",
                data={"username": "amina", "password": PASSWORD, "csrf_token": token},
            )
            assert response.status_code == 400
            assert "Ce formulaire avait expiré" in html_of(response)
            assert SESSION_COOKIE not in browser.client.cookies

    async def test_logging_in_opens_a_home_page_naming_the_user_and_the_node(
        self, browser: Browser
    ) -> None:
        response = await browser.log_in()
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        home = await browser.get("/")
        assert home.status_code == 200
        page = html_of(home)
        assert "Bienvenue, Amina Benali" in page
        assert "Chargé(e) de dossiers" in page
        assert "Nœud central du réseau (secrétariat)" in page
        assert '<a href="/docs">' in page
        assert '<a href="/readyz">' in page

    async def test_pages_are_neither_cached_nor_framed(self, browser: Browser) -> None:
        await browser.log_in()
        home = await browser.get("/")
        assert home.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]

    async def test_the_stylesheet_is_served_and_mirrors_itself_for_arabic(
        self, browser: Browser
    ) -> None:
        response = await browser.get("/static/dashboard.css")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/css")
        # Logical properties only: a physical side would stay put on a right-to-left page.
        assert "inset-inline-start" in response.text
        assert re.search(r"\b(left|right)\b", response.text) is None


class TestLoggingOut:
    async def test_logging_out_needs_the_pages_csrf_token(self, browser: Browser) -> None:
        await browser.log_in()
        refused = await browser.client.post("/logout", data={})
        assert refused.status_code == 403
        assert "Cette page a expiré" in html_of(refused)
        assert (await browser.get("/")).status_code == 200  # still logged in

    async def test_logging_out_ends_the_session(self, browser: Browser) -> None:
        await browser.log_in()
        home = await browser.get("/")
        response = await browser.client.post("/logout", data={"csrf_token": token_in(home)})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert SESSION_COOKIE not in browser.client.cookies
        assert (await browser.get("/")).headers["location"] == "/login"


class TestErrorPages:
    async def test_a_page_the_account_may_not_open_answers_403_in_html(
        self, browser: Browser
    ) -> None:
        await browser.log_in()
        response = await browser.get("/test/accounts")
        assert response.status_code == 403
        assert "Action non autorisée" in html_of(response)

    async def test_the_api_keeps_answering_with_problem_details(self, browser: Browser) -> None:
        response = await browser.get("/api/v1/auth/me")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
