"""RFC 9457 problem details: how every error leaves Relais over HTTP.

``type`` is stable (``/problems/<slug>``), ``detail`` is for people and carries no personal
data, ``field`` names the offending input when there is one. Nothing here lets an exception's
internals (a stack, a query) reach the client.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import nats.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shared import outages
from shared.errors import DomainError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        # Every 503 says when to come back: a careful client waits that long, then retries.
        headers["Retry-After"] = str(outages.RETRY_AFTER_SECONDS)
    if status == 429 and "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers or None)


def unavailable(dependency: outages.Dependency) -> JSONResponse:
    """The answer while ``dependency`` is down: 503, which one, when to retry; no internals."""
    down = outages.DependencyDown(dependency)
    return problem(down.status, down.type, down.title, down.detail, **down.extensions())


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(exc.status, exc.type, exc.title, exc.detail, field=exc.field, **exc.extensions())


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            # FastAPI prefixes where the value came from; the client knows its own field names.
            # A body that is not JSON at all is at fault as a whole (its loc is a byte offset).
            "field": "body"
            if error["type"] == "json_invalid"
            else ".".join(str(p) for p in error["loc"][1:]) or str(error["loc"][0]),
            "detail": error["msg"],
        }
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "detail": "invalid request"}
    return problem(
        422,
        "invalid",
        "Invalid input",
        f"{first['field']}: {first['detail']}",
        field=first["field"],
        errors=errors,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    slug = {
        400: "bad-request",
        404: "not-found",
        405: "method-not-allowed",
        401: "unauthenticated",
        403: "forbidden",
    }
    return problem(
        exc.status_code, slug.get(exc.status_code, "http-error"), str(exc.detail), str(exc.detail)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """An exception no code answered: 503 if it means the database or the broker is down
    (logged as a warning, without a stack), else 500 (logged with its stack)."""
    dependency = outages.unavailable(exc)
    if dependency is not None:
        log.warning(
            "%s %s: %s unavailable (%s: %s)",
            request.method,
            request.url.path,
            dependency.value,
            type(exc).__name__,
            exc,
        )
        return unavailable(dependency)
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(
        500, "internal", "Internal error", "Something went wrong on this node; it is logged."
    )


# The classes an outage's exception belongs to; which instances are outages, outages decides.
OUTAGE_CLASSES: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    nats.errors.Error,
)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # Registered by class, so that the exception middleware answers them (the catch-all below
    # answers from outside every middleware, and re-raises into the server afterwards).
    for kind in OUTAGE_CLASSES:
        app.add_exception_handler(kind, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
