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

from services.dashboard import labels
from shared import i18n, outages
from shared.auth.roles import NETWORK_FIGURE_READERS, Principal, Role
from shared.auth.sessions import CSRF_FIELD, session_of
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
    # No inline script or style anywhere (only the node's own files); nothing may frame a page.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self';"
        " connect-src 'self'; form-action 'self';"
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
# What the "temporarily unavailable" page says was not reachable.
UNREACHABLE = {
    outages.Dependency.DATABASE: N_("This node cannot reach its database at the moment."),
    outages.Dependency.BROKER: N_("This node cannot reach the network's messaging at the moment."),
    outages.Dependency.SERVICE: N_(
        "A service this node depends on is not answering at the moment."
    ),
}
# Form fields the page does not write back into its HTML: a password must not sit in a page.
_NOT_KEPT = ("password",)


def language_of(request: Request) -> str:
    return i18n.negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))


def settings_of(request: Request) -> NodeSettings:
    return context_of("dashboard")(request).settings


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    principal: Principal | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered in the request's language, with what every page shows: the node,
    the language switcher (which comes back to this very address) and, for a logged-in
    visitor, the navigation of their role and the logout button."""
    lang = language_of(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    settings = settings_of(request)
    if principal is None:
        known = getattr(request.state, "auth_principal", None)
        principal = known if isinstance(known, Principal) else None
    session = session_of(request) if principal is not None else None
    html = (
        i18n.environment(TEMPLATES, lang)
        .get_template(template)
        .render(
            node_id=settings.node_id,
            node_org=settings.org,
            is_hub=settings.is_hub,
            here=here,
            languages=[
                (code, i18n.language_name(code), i18n.direction(code)) for code in i18n.SUPPORTED
            ],
            nav=navigation(principal, here, is_hub=settings.is_hub),
            session_csrf=session.csrf if session is not None else None,
            principal=principal,
            # The zone of every time on the page (the reader's choice, else the node's).
            reader_zone=labels.zone_note(lang),
            **context,
        )
    )
    headers = {**PAGE_HEADERS, "Content-Language": lang}
    return HTMLResponse(html, status_code=status_code, headers=headers)


NAV_ITEMS: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("/network", N_("Network"), NETWORK_FIGURE_READERS),
    (
        "/referrals?box=inbox",
        N_("Inbox"),
        frozenset({Role.CASEWORKER, Role.FOCAL_POINT, Role.AUDITOR}),
    ),
    (
        "/referrals?box=outbox",
        N_("Outbox"),
        frozenset({Role.CASEWORKER, Role.FOCAL_POINT, Role.AUDITOR}),
    ),
    ("/referrals/new", N_("New referral"), frozenset({Role.CASEWORKER, Role.FOCAL_POINT})),
    ("/organisation", N_("Organisation"), frozenset(Role)),
    ("/audit", N_("Audit log"), frozenset({Role.COORDINATOR, Role.AUDITOR, Role.ADMIN})),
    ("/admin/users", N_("Users"), frozenset({Role.ADMIN})),
    ("/admin/tokens", N_("API tokens"), frozenset({Role.ADMIN})),
    ("/admin/clients", N_("Member systems"), frozenset({Role.ADMIN})),
    ("/admin/notifications", N_("Notification rules"), frozenset({Role.ADMIN})),
    ("/admin/dead-letters", N_("Dead letters"), frozenset({Role.ADMIN})),
    ("/admin/outbox-replay", N_("Replay the outbox"), frozenset({Role.ADMIN})),
    ("/notifications", N_("Notifications"), frozenset(Role)),
)
HUB_ONLY = frozenset({"/network"})
MEMBER_ONLY = frozenset({"/admin/clients"})  # the hub has no member-system clients


def navigation(
    principal: Principal | None, here: str, *, is_hub: bool
) -> list[tuple[str, str, bool]]:
    """The links of the visitor's roles: (address, label, whether it is the current page)."""
    if principal is None or principal.kind != "user":
        return []
    links = []
    for href, label, roles in NAV_ITEMS:
        if (href in HUB_ONLY and not is_hub) or (href in MEMBER_ONLY and is_hub):
            continue
        if principal.has(*roles):
            links.append((href, label, _current(href, here)))
    return links


def _current(href: str, here: str) -> bool:
    """A link is current when the page is its address, with at least the link's query."""
    target, _, query = href.partition("?")
    path, _, here_query = here.partition("?")
    return path == target and set(query.split("&")) <= set(here_query.split("&"))


def error_page(request: Request, status_code: int, what: tuple[str, str]) -> HTMLResponse:
    title, advice = what
    page = render(request, "error.html", status_code=status_code, title=title, advice=advice)
    if status_code == 503:
        page.headers["Retry-After"] = str(outages.RETRY_AFTER_SECONDS)
    return page


async def unavailable_page(request: Request, dependency: outages.Dependency) -> HTMLResponse:
    """503 with Retry-After: "temporarily unavailable, your work is kept". A form that was
    being sent comes back in the page, field for field, to send again with one button (its
    CSRF token as it came: a forged request stays refused the second time)."""
    resend: list[tuple[str, str]] | None = None
    dropped = False
    if request.method == "POST":
        resend = []
        try:
            form = await request.form()
        except Exception:  # a body that is no form (or no longer readable): nothing to keep
            form = None
        for name, value in form.multi_items() if form is not None else ():
            if isinstance(value, str) and not any(word in name.lower() for word in _NOT_KEPT):
                resend.append((name, value))
            else:
                dropped = True
    page = render(
        request,
        "unavailable.html",
        status_code=503,
        what=UNREACHABLE[dependency],
        resend=resend,
        dropped=dropped,
    )
    page.headers["Retry-After"] = str(outages.RETRY_AFTER_SECONDS)
    return page


def outage_of(error: Exception) -> outages.Dependency | None:
    """The dependency ``error`` says is down, from this process or from the API it called."""
    if isinstance(error, DomainError):
        if error.status != 503:
            return None
        dependency = getattr(error, "dependency", None)
        return (
            outages.Dependency(dependency)
            if dependency in set(outages.Dependency)
            else (outages.Dependency.SERVICE)
        )
    return outages.unavailable(error)


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
        known_status = {403: NOT_ALLOWED, 404: NOT_FOUND}
        return error_page(request, error.status, known_status.get(error.status, NOT_DONE))
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
            except Exception as error:
                dependency = outage_of(error)
                if dependency is not None:
                    return await unavailable_page(request, dependency)
                if isinstance(error, DomainError | HTTPException | RequestValidationError):
                    return page_for(request, error)
                raise

        return handle_page
