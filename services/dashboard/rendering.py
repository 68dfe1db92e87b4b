"""How the dashboard answers a browser: the request's language, templates rendered in it, the
headers every page carries, and errors on its own routes turned into pages a person can read.

The API keeps its problem details (``shared.problems``); only routes of the dashboard's router,
built with ``PageRoute``, answer in HTML.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from shared import i18n
from shared.auth.sessions import CSRF_FIELD
from shared.errors import DomainError, Forbidden, NotFound, Unauthenticated
from shared.i18n import N_
from shared.service import context_of
from shared.settings import NodeSettings

TEMPLATES = Path(__file__).parent / "templates"
LANG_COOKIE = "relais_lang"
LOGIN_PATH = "/login"

PAGE_HEADERS = {
    # Phones are often shared: a page must not be readable from the cache after logging out.
    "Cache-Control": "no-store",
    # No script and no inline style anywhere; nothing may frame the login form.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Vary": "Accept-Language, Cookie",
}

# What an error page says, by kind: its title, then what the reader can do about it.
NOT_FOUND = (
    N_("Page not found"),
    N_("There is no page at this address. Check the link, or go to the home page."),
)
NOT_ALLOWED = (
    N_("Not allowed"),
    N_(
        "Your account may not do this. If you need to, ask the person who manages Relais"
        " in your organisation."
    ),
)
EXPIRED = (
    N_("This page has expired"),
    N_("Go back, reload the page and try again."),
)
NOT_DONE = (
    N_("This request could not be carried out"),
    N_("Go back, reload the page and try again."),
)


def language_of(request: Request) -> str:
    return i18n.negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))


def settings_of(request: Request) -> NodeSettings:
    return context_of("dashboard")(request).settings


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """``template`` rendered in the request's language, with what every page shows: the node,
    the language switcher (which comes back to this very address)."""
    lang = language_of(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = (
        i18n.environment(TEMPLATES, lang)
        .get_template(template)
        .render(
            node_id=settings_of(request).node_id,
            here=here,
            languages=[
                (code, i18n.language_name(code), i18n.direction(code)) for code in i18n.SUPPORTED
            ],
            **context,
        )
    )
    headers = {**PAGE_HEADERS, "Content-Language": lang}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def error_page(request: Request, status_code: int, what: tuple[str, str]) -> HTMLResponse:
    title, advice = what
    return render(request, "error.html", status_code=status_code, title=title, advice=advice)


def page_for(request: Request, error: Exception) -> Response:
    """The page a browser gets instead of ``error``."""
    if isinstance(error, Unauthenticated):
        return RedirectResponse(LOGIN_PATH, status_code=303)
    if isinstance(error, Forbidden):
        expired = error.field == CSRF_FIELD  # a form older than the session it was sent in
        return error_page(request, 403, EXPIRED if expired else NOT_ALLOWED)
    if isinstance(error, NotFound):
        return error_page(request, 404, NOT_FOUND)
    if isinstance(error, DomainError):
        return error_page(request, error.status, NOT_DONE)
    if isinstance(error, HTTPException):
        known = {403: NOT_ALLOWED, 404: NOT_FOUND}
        return error_page(request, error.status_code, known.get(error.status_code, NOT_DONE))
    return error_page(request, 400, NOT_DONE)  # a request the route's parameters refuse


class PageRoute(APIRoute):
    """A route of the pages: its errors become HTML in the reader's language, and a visitor
    who is not logged in is sent to the login form rather than shown a 401."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            try:
                return await handle(request)
            except (DomainError, HTTPException, RequestValidationError) as error:
                return page_for(request, error)

        return handle_page
