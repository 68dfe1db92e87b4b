"""What a request must be before any handler, parser or authentication spends on it.

An app-wide ASGI middleware, outermost: at most ``MAX_HEADERS`` headers and ``MAX_HEADER_BYTES``
of them (431); a body no larger than its route's limit (413), counted as it arrives so that a
chunked body is cut off at the limit rather than read whole; no text PostgreSQL cannot store
(``shared.inputs``) in the path, the query string, a JSON or form body (422 naming the field).
Every response leaves with the security headers, and without a server banner.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.formparsers import MultiPartParser
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import inputs, problems
from shared.settings import NodeSettings

MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024
DEFAULT_BODY_LIMIT = 64 * 1024
# Small where nobody sends much and the route is open to anyone; larger for the documents.
BODY_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/api/v1/auth/token$"), 4 * 1024),
    (re.compile(r"^/login$"), 4 * 1024),
    (re.compile(r"^/api/v1/[a-z_]+/(records|applications|referrals)(/|$)"), 256 * 1024),
    (re.compile(r"^/(records|applications|referrals)(/|$)"), 256 * 1024),
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


# A referral's file is its whole body: the node's file limit and a little more, so that the
# file's own check (422, naming the limit) answers first rather than a bare 413.
ATTACHMENT_ROUTES = (
    re.compile(r"^/api/v1/referrals/[^/]+/attachments$"),
    re.compile(r"^/referrals/[^/]+/attachments$"),
)
ATTACHMENT_SLACK = 64 * 1024


# Starlette writes a file part over 1 MB of a form to a temporary file: a person's document
# in clear on the disk. Every body here is bounded by its route's limit above, so the parts
# stay in memory instead (the class attribute is Starlette's documented knob for this).
MultiPartParser.spool_max_size = 1 << 40


def attachment_body_limit(max_mb: float) -> int:
    return int(max_mb * 1024 * 1024) + ATTACHMENT_SLACK


def body_limit(path: str, attachments: int | None = None) -> int:
    if any(p.match(path) for p in ATTACHMENT_ROUTES):
        return attachments if attachments is not None else attachment_body_limit(10)
    for pattern, limit in BODY_LIMITS:
        if pattern.match(path):
            return limit
    return DEFAULT_BODY_LIMIT


def _invalid(field: str) -> JSONResponse:
    detail = "text holds a character that cannot be stored (NUL or another control character)"
    return problems.problem(
        422,
        "invalid",
        "Invalid input",
        f"{field}: {detail}",
        field=field,
        errors=[{"field": field, "detail": detail}],
    )


def _too_large(limit: int) -> JSONResponse:
    return problems.problem(
        413,
        "too-large",
        "Request body too large",
        f"This route accepts at most {limit} bytes of body.",
        limit=limit,
    )


def _headers_too_large() -> JSONResponse:
    return problems.problem(
        431,
        "headers-too-large",
        "Request headers too large",
        f"At most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes of them are accepted.",
    )


def _first_in_pairs(pairs: Iterable[tuple[str, str]]) -> str | None:
    for key, value in pairs:
        if inputs.unstorable(key) or inputs.unstorable(value):
            return key if not inputs.unstorable(key) else "(key)"
    return None


class Intake:
    def __init__(self, app: ASGIApp, *, routes_of: FastAPI, settings: NodeSettings) -> None:
        self.app = app
        self.routes_of = routes_of
        self.hsts = not settings.demo
        self.attachments = attachment_body_limit(settings.attachment_max_mb)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self._secured(scope, send)
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if (
            len(headers) > MAX_HEADERS
            or sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES
        ):
            await _headers_too_large()(scope, receive, send)
            return
        refusal = self._refused_url(scope)
        if refusal is not None:
            await _invalid(refusal)(scope, receive, send)
            return
        limit = body_limit(scope["path"], self.attachments)
        declared = dict(headers).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") and declared in (None, b"0"):
            await self.app(scope, receive, send)
            return
        # Read the body here, bounded: a chunked body is counted as it arrives.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(limit)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        field = _offending_body(dict(headers).get(b"content-type", b""), body)
        if field is not None:
            await _invalid(field)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # a disconnect, once the handler waits for one

        await self.app(scope, replay, send)

    def _refused_url(self, scope: Scope) -> str | None:
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="surrogatepass")
        except UnicodeError:
            return "query"
        field = _first_in_pairs(pairs)
        if field is not None:
            return field
        if not inputs.unstorable(scope["path"]):
            return None
        for route in self.routes_of.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                params = child.get("path_params", {})
                for name, value in params.items():
                    if isinstance(value, str) and inputs.unstorable(value):
                        return str(name)
        return "path"

    def _secured(self, scope: Scope, send: Send) -> Send:
        extra = [
            *SECURITY_HEADERS,
            *((HSTS,) if self.hsts or scope.get("scheme") == "https" else ()),
        ]

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        return secured


def _offending_body(content_type: bytes, body: bytes) -> str | None:
    if not body:
        return None
    kind = content_type.split(b";")[0].strip().lower()
    if kind == b"application/json" or kind.endswith(b"+json"):
        try:
            value = json.loads(body)
        except (ValueError, UnicodeError):
            return None  # not JSON: the route's own validation says so
        return inputs.first_offending(value)
    if kind == b"application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(
                body.decode("latin-1"), keep_blank_values=True, errors="surrogatepass"
            )
        except UnicodeError:
            return "body"
        return _first_in_pairs(pairs)
    return None


def install(app: FastAPI, settings: NodeSettings) -> None:
    """Outermost middleware, and each route's body limit declared in its OpenAPI operation."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            route.openapi_extra = {
                **(route.openapi_extra or {}),
                "x-body-limit": body_limit(
                    route.path, attachment_body_limit(settings.attachment_max_mb)
                ),
            }
    app.add_middleware(Intake, routes_of=app, settings=settings)
