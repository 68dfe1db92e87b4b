"""The login form's CSRF token, for the moment before any session exists.

Without it, another site could make a visitor's browser log in to an account of the attacker's
choosing, and whatever the visitor then typed would land in that account. The session's own
CSRF token cannot help: there is no session yet. So the form carries a signed double-submit
token: ``GET /login`` puts a random nonce in a cookie that only ``/login`` receives, and the
form a token signed with the node's secret that names that nonce; ``POST /login`` is accepted
only when the two match and the token is recent. The cookie is ``SameSite=Strict``, so a form
posted from another site arrives without it; the signature means a nonce alone is not enough.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import timedelta

from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from shared.settings import NodeSettings

# Long enough for a form left open on a phone during a working day.
MAX_AGE = timedelta(hours=12)
_NONCE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


def cookie_name(node_id: str) -> str:
    # The demo's nodes share one host, and browsers do not separate cookies by port.
    return f"relais_login_{node_id}"


def _serializer(settings: NodeSettings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=f"relais-login:{settings.node_id}")


def _nonce_of(request: Request, settings: NodeSettings) -> str | None:
    nonce = request.cookies.get(cookie_name(settings.node_id))
    return nonce if nonce is not None and _NONCE.match(nonce) else None


def issue(request: Request, settings: NodeSettings) -> tuple[str, str]:
    """A nonce and the token naming it, for a login form about to be sent (``keep`` the nonce
    in the response).

    The nonce already in the browser is kept, so that two open login tabs both still work.
    """
    nonce = _nonce_of(request, settings) or secrets.token_urlsafe(32)
    token: str = _serializer(settings).dumps(nonce)
    return nonce, token


def keep(response: Response, nonce: str, settings: NodeSettings) -> None:
    response.set_cookie(
        cookie_name(settings.node_id),
        nonce,
        max_age=int(MAX_AGE.total_seconds()),
        path="/login",
        secure=not settings.demo,  # the demo serves plain HTTP on localhost
        httponly=True,
        samesite="strict",
    )


def accepted(request: Request, presented: str, settings: NodeSettings) -> bool:
    """Whether ``presented`` is a recent token naming the nonce of this browser's cookie."""
    nonce = _nonce_of(request, settings)
    if nonce is None or not presented:
        return False
    try:
        signed = _serializer(settings).loads(presented, max_age=int(MAX_AGE.total_seconds()))
    except BadData:
        return False
    return isinstance(signed, str) and hmac.compare_digest(signed.encode(), nonce.encode())


def forget(response: Response, settings: NodeSettings) -> None:
    """Drop the nonce once logged in: the next login form gets a fresh one."""
    response.delete_cookie(
        cookie_name(settings.node_id),
        path="/login",
        secure=not settings.demo,
        httponly=True,
        samesite="strict",
    )
