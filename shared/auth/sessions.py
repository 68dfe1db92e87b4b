"""Web sessions for the pages: a signed, HTTP-only cookie that names the user and carries the
session's random id and CSRF token; logging in and out; checking that token on state-changing
requests.

The session itself lives in the node's database (``session_store``): every request looks it
up by its id, so logging out, an administrator's end, or a change to the account ends it at
once, and a copy of the cookie is worth nothing after. The cookie holds no role: every request
reads the account again. Its name and signing salt carry the node id because the demo's nodes
share one host, and browsers do not separate cookies by port.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from shared.auth import session_store, store
from shared.auth.domain import User
from shared.db import Pool
from shared.errors import Forbidden, Unauthenticated
from shared.service import context_of
from shared.settings import NodeSettings

SESSION_MAX_AGE = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_NOT_READ = object()


@dataclass(frozen=True)
class Session:
    username: str
    csrf: str
    secret: str  # the session's id in the database is its digest

    def __repr__(self) -> str:  # keep the CSRF token and the id out of logs and tracebacks
        return "Session(...)"


def new_session(username: str) -> Session:
    return Session(username, secrets.token_urlsafe(32), secrets.token_urlsafe(32))


class SessionSigner:
    """Signs sessions into cookie values and reads them back, refusing forged or stale ones."""

    def __init__(self, secret_key: str, node_id: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=f"relais-session:{node_id}")

    def sign(self, session: Session) -> str:
        return self._serializer.dumps(
            {"u": session.username, "c": session.csrf, "s": session.secret}
        )

    def load(self, value: str, *, max_age: timedelta = SESSION_MAX_AGE) -> Session | None:
        try:
            data: Any = self._serializer.loads(value, max_age=int(max_age.total_seconds()))
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        username, csrf, secret = data.get("u"), data.get("c"), data.get("s")
        if not (isinstance(username, str) and isinstance(csrf, str) and isinstance(secret, str)):
            return None  # a cookie of before server-side sessions: log in again
        return Session(username, csrf, secret)


def csrf_matches(session: Session, presented: str | None) -> bool:
    """Whether ``presented`` is this session's CSRF token (compared in constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(session.csrf.encode(), presented.encode())


def cookie_name(node_id: str) -> str:
    return f"relais_session_{node_id}"


def signer_for(settings: NodeSettings) -> SessionSigner:
    return SessionSigner(settings.secret_key, settings.node_id)


async def login_session(response: Response, user: User, pool: Pool, settings: NodeSettings) -> str:
    """Open a page session for ``user`` (authenticated by the caller); returns its CSRF token."""
    if user.disabled:
        raise Unauthenticated("this account is disabled")
    session = new_session(user.username)
    await session_store.open_session(pool, user.username, session.secret, SESSION_MAX_AGE)
    set_session_cookie(response, session, settings)
    return session.csrf


def set_session_cookie(response: Response, session: Session, settings: NodeSettings) -> None:
    """The cookie of an opened session: HTTP-only, same-site lax, secure but in the demo."""
    response.set_cookie(
        cookie_name(settings.node_id),
        signer_for(settings).sign(session),
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        path="/",
        secure=not settings.demo,  # the demo serves plain HTTP on localhost
        httponly=True,
        samesite="lax",
    )


async def logout_session(
    request: Request, response: Response, pool: Pool, settings: NodeSettings
) -> session_store.Holder | None:
    """End the request's session in the database (audited) and drop its cookie; whose it was,
    if it was open."""
    session = session_of(request)
    ended = None
    if session is not None:
        ended = await session_store.end_presented(pool, session.secret)
    if ended is not None:
        who = f"user:{ended.username}"
        await store.audit(pool, who, "session.logout", who, org=settings.org)
    forget_session_cookie(response, settings)
    return ended


def forget_session_cookie(response: Response, settings: NodeSettings) -> None:
    response.delete_cookie(
        cookie_name(settings.node_id),
        path="/",
        secure=not settings.demo,
        httponly=True,
        samesite="lax",
    )


def _settings(request: Request) -> NodeSettings:
    return context_of("auth")(request).settings


def session_of(request: Request) -> Session | None:
    """The request's valid session cookie, if it has one (the account is not checked here)."""
    cached = getattr(request.state, "auth_session", _NOT_READ)
    if cached is not _NOT_READ:
        assert cached is None or isinstance(cached, Session)
        return cached
    settings = _settings(request)
    value = request.cookies.get(cookie_name(settings.node_id))
    session = None if value is None else signer_for(settings).load(value)
    request.state.auth_session = session
    return session


def csrf_token(request: Request) -> str:
    """The CSRF token a page puts in its forms (field ``csrf_token``) or scripts send (header
    ``X-CSRF-Token``)."""
    session = session_of(request)
    if session is None:
        raise Unauthenticated("log in first")
    return session.csrf


async def verify_csrf(request: Request, session: Session) -> None:
    """Refuse a state-changing request that does not carry its session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if presented is None and content_type.startswith(FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not csrf_matches(session, presented):
        raise Forbidden("missing or wrong CSRF token; reload the page", field=CSRF_FIELD)


async def check_csrf(request: Request) -> None:
    """FastAPI dependency: the CSRF check for requests authenticated by the session cookie.

    Bearer requests need none: a browser never adds an ``Authorization`` header on its own.
    """
    if "authorization" in request.headers:
        return
    session = session_of(request)
    if session is not None:
        await verify_csrf(request, session)
