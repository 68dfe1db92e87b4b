"""The dashboard's pages: logging in and out, the home page, choosing the language, and the
stylesheet. Everything a page says goes through the catalogues of ``shared.i18n``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from babel.dates import format_timedelta
from babel.lists import format_list
from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.dashboard import (
    account_pages,
    admin_pages,
    audit_pages,
    client_pages,
    deadletter_pages,
    joining_pages,
    login_token,
    network_pages,
    notification_admin_pages,
    notification_pages,
    profile_pages,
    referral_pages,
    replay_pages,
    wizard,
)
from services.dashboard.lookups import Lookups
from services.dashboard.node_api import NodeApi
from services.dashboard.reader_zone import reader_zone
from services.dashboard.rendering import (
    LANG_COOKIE,
    LOGIN_PATH,
    PageRoute,
    language_of,
    render,
    settings_of,
)
from shared import i18n
from shared.auth import (
    Principal,
    Role,
    check_csrf,
    login_session,
    logout_session,
    require,
    throttle,
)
from shared.auth import store as accounts
from shared.auth.domain import PASSWORD_MAX_LENGTH
from shared.errors import NotFound, TooManyRequests, Unauthenticated
from shared.i18n import N_
from shared.service import context_of

STATIC = Path(__file__).parent / "static"
LANG_COOKIE_MAX_AGE = timedelta(days=365)
WAITING_SHOWN = 5  # the home page's referrals waiting for an answer; the inbox has the rest
USERNAME_MAX_LENGTH = 40  # as the account rules allow; a longer one cannot match

ROLE_LABELS = {
    Role.CASEWORKER: N_("Case worker"),
    Role.FOCAL_POINT: N_("Focal point"),
    Role.COORDINATOR: N_("Coordinator"),
    Role.AUDITOR: N_("Auditor"),
    Role.ADMIN: N_("Administrator"),
}
HUB_NODE = N_("Hub of the network (secretariat)")
MEMBER_NODE = N_("Node of a member organisation")
ENTER_USERNAME = N_("Enter your username.")
ENTER_PASSWORD = N_("Enter your password.")
WRONG_CREDENTIALS = N_("Wrong username or password.")
FORM_EXPIRED = N_("This form had expired. Please log in again.")
# %(wait)s: how long, as babel words it in the page's language ("dans 15 minutes").
LOCKED = N_("Too many attempts. Try again %(wait)s.")

pages = APIRouter(route_class=PageRoute, dependencies=[Depends(reader_zone)])
pages.mount("/static", StaticFiles(directory=STATIC), name="static")
# The wizard's /referrals/new before the referral pages' /referrals/{referral_id}.
for section in (
    wizard,
    referral_pages,
    profile_pages,
    admin_pages,
    client_pages,
    account_pages,
    network_pages,
    joining_pages,
    notification_pages,
    notification_admin_pages,
    audit_pages,
    deadletter_pages,
    replay_pages,
):
    pages.include_router(section.router)  # its routes take the dependency of `pages`
Anyone = Annotated[Principal, Depends(require())]


@pages.get("/")
async def home(request: Request, principal: Anyone) -> Response:
    settings = settings_of(request)
    lang = language_of(request)
    name = principal.subject
    if principal.kind == "user":
        user = await accounts.get_user(context_of("auth")(request).pool, principal.subject)
        name = (user.display_name if user is not None else None) or name
    api = NodeApi(request)
    names = await Lookups(api, lang).org_names()
    # What a case worker opens Relais for, rather than the menu again: what waits for them.
    waiting, more_waiting = (
        await referral_pages.waiting_for_answer(api, lang, WAITING_SHOWN)
        if principal.has(Role.CASEWORKER, Role.FOCAL_POINT) and not settings.is_hub
        else (None, False)
    )
    return render(
        request,
        "home.html",
        principal=principal,
        org_name=names.get(settings.org, ""),
        name=name,
        roles=format_list(
            [
                i18n.translations(lang).gettext(ROLE_LABELS[role])
                for role in sorted(principal.roles)
            ],
            locale=lang,
        ),
        org=settings.org,
        node_kind=HUB_NODE if settings.is_hub else MEMBER_NODE,
        waiting=waiting,
        more_waiting=more_waiting,
    )


@pages.get(LOGIN_PATH)
async def login_form(request: Request) -> Response:
    return _login_page(request)


@pages.post(LOGIN_PATH)
async def log_in(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Open a session, or show the form again with what went wrong beside its field."""
    auth = context_of("auth")(request)
    username = username.strip()
    if not login_token.accepted(request, csrf_token, auth.settings):
        return _login_page(request, username, {"form": FORM_EXPIRED}, status_code=400)
    missing = {
        field: message
        for field, value, message in (
            ("username", username, ENTER_USERNAME),
            ("password", password, ENTER_PASSWORD),
        )
        if not value
    }
    if missing:
        return _login_page(request, username, missing, status_code=400)
    try:
        if len(username) > USERNAME_MAX_LENGTH or len(password) > PASSWORD_MAX_LENGTH:
            # Spares the password hashing an unbounded input; says no more than a wrong one.
            raise Unauthenticated(WRONG_CREDENTIALS)
        user = await throttle.authenticate(request, auth.pool, auth.settings, username, password)
    except TooManyRequests as locked:
        # Above the form, in words: how long to wait, not an error page.
        wait = format_timedelta(
            timedelta(seconds=locked.retry_after), add_direction=True, locale=language_of(request)
        )
        errors = {"form": LOCKED}
        page = _login_page(
            request, username[:USERNAME_MAX_LENGTH], errors, status_code=429, wait=wait
        )
        page.headers["Retry-After"] = str(locked.retry_after)
        return page
    except Unauthenticated:
        # Beside the password: the message must not tell which of the two was wrong.
        errors = {"password": WRONG_CREDENTIALS}
        return _login_page(request, username[:USERNAME_MAX_LENGTH], errors, status_code=401)
    response = RedirectResponse("/", status_code=303)
    await login_session(response, user, auth.pool, auth.settings)
    login_token.forget(response, auth.settings)
    return response


def _login_page(
    request: Request,
    username: str = "",
    errors: dict[str, str] | None = None,
    *,
    status_code: int = 200,
    wait: str = "",
) -> Response:
    settings = settings_of(request)
    nonce, token = login_token.issue(request, settings)
    page = render(
        request,
        "login.html",
        status_code=status_code,
        username=username,
        errors=errors or {},
        csrf=token,
        wait=wait,
    )
    login_token.keep(page, nonce, settings)
    return page


@pages.post("/logout", dependencies=[Depends(check_csrf)])
async def log_out(request: Request) -> Response:
    """End the session everywhere (a copy of its cookie is refused after) and drop the cookie."""
    auth = context_of("auth")(request)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    await logout_session(request, response, auth.pool, auth.settings)
    return response


@pages.get("/lang/{code}")
async def choose_language(
    request: Request, code: str, back: Annotated[str, Query(alias="next")] = "/"
) -> Response:
    """Remember the chosen language (a cookie, for a year) and return to the page it was
    chosen on."""
    if code not in i18n.SUPPORTED:
        raise NotFound("no such language", field="code")
    settings = settings_of(request)
    response = RedirectResponse(local_path(back), status_code=303)
    response.set_cookie(
        LANG_COOKIE,
        code,
        max_age=int(LANG_COOKIE_MAX_AGE.total_seconds()),
        path="/",
        secure=not settings.demo,
        httponly=True,
        samesite="lax",
    )
    return response


def local_path(target: str) -> str:
    """``target`` if it is a path on this node, else ``/``: the language switcher must not
    become a way to send people to another site (``//evil.example``, ``https://...``)."""
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return "/"
    return target
