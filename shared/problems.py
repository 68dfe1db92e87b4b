"""RFC 9457 problem details: how every error leaves Relais over HTTP.

``type`` is stable (``/problems/<slug>``), ``detail`` is for people and carries no personal
data, ``field`` names the offending input when there is one. Nothing here lets an exception's
internals (a stack, a query) reach the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shared.errors import DomainError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(exc.status, exc.type, exc.title, exc.detail, field=exc.field, **exc.extensions())


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            # FastAPI prefixes where the value came from; the client knows its own field names.
            "field": ".".join(str(p) for p in error["loc"][1:]) or str(error["loc"][0]),
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
    slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated", 403: "forbidden"}
    return problem(
        exc.status_code, slug.get(exc.status_code, "http-error"), str(exc.detail), str(exc.detail)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(
        500, "internal", "Internal error", "Something went wrong on this node; it is logged."
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
