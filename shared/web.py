"""The HTTP face of a node or of one service alone: the services' routers under
``/api/v1/<service>``, health and readiness, metrics, the AsyncAPI document, problem details."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import api_document, asyncapi, intake, ops, outages, problems, telemetry
from shared.db import MigrationChanged
from shared.runtime import NodeRuntime
from shared.service import Service
from shared.settings import NodeSettings

HTTP_REQUESTS = Counter(
    "relais_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram("relais_http_request_seconds", "HTTP request latency", ["method", "route"])
# Known reasons for a node to refuse to start, each explaining itself in one line in the
# operator's language: ``deploy.node.serve`` prints that line and exits without a traceback,
# which is kept for everything else (a bug shows where it is).
REFUSALS: tuple[type[Exception], ...] = (MigrationChanged,)
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.json", "/docs")
UNMEASURED = frozenset({"/healthz", "/readyz", "/metrics"})
# Set while a request is being measured: the requests it makes to the app itself are not.
_measuring: ContextVar[bool] = ContextVar("relais_http_measuring", default=False)


def create_app(settings: NodeSettings, services: Sequence[Service], *, title: str) -> FastAPI:
    runtime = NodeRuntime(settings, services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await runtime.start()
        except REFUSALS as refused:
            app.state.refused = str(refused)
            await runtime.stop()  # what had started before the refusal
            raise
        app.state.contexts = runtime.contexts
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.auth_throttle = runtime.throttle  # shared with the services' NATS commands
    app.state.refused = None
    for service in services:
        app.include_router(service.router, prefix=f"/api/v1/{service.name}", tags=[service.name])
        if service.pages is not None:
            app.include_router(service.pages, include_in_schema=False)
        if service.webhooks is not None:
            app.webhooks.include_router(service.webhooks, tags=[service.name])

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is alive (it may not be ready)."""
        return {"status": "ok", "node": settings.node_id}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready when the broker, every service's database and the consumers are."""
        checks = await runtime.checks()
        ready = all(checks.values())
        return JSONResponse(
            {
                "status": "ready" if ready else "not ready",
                "node": settings.node_id,
                "checks": checks,
            },
            status_code=200 if ready else 503,
            headers=None if ready else {"Retry-After": str(outages.RETRY_AFTER_SECONDS)},
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json() -> dict[str, object]:
        return asyncapi.document(settings)

    templates = RouteTemplates(app)

    app.add_middleware(Measured, templates=templates)
    app.include_router(ops.router, prefix="/api/v1/node", tags=["node"])
    api_document.install(app)
    problems.install(app)
    telemetry.instrument(app)
    intake.install(app, settings)  # last: outermost, before any other middleware's work
    return app


class Measured:
    """Counts and times every request by method, route template and status.

    Pure ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs
    the app in a task of its own and streams the response through memory channels, which cost
    a node more per request (in ``make bench``'s profile) than this counting does."""

    def __init__(self, app: ASGIApp, *, templates: RouteTemplates) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Probes and scrapes are not requests anyone made; a page's in-process call to the API
        # (services/dashboard/node_api.py) runs inside the page's request, which is counted.
        if scope["type"] != "http" or scope["path"] in UNMEASURED or _measuring.get():
            await self.app(scope, receive, send)
            return
        token = _measuring.set(True)
        started = time.perf_counter()
        status = "500"  # what the client gets if the handler raised before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _measuring.reset(token)
            method, route = scope["method"], self.templates.of(scope["path"])
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(method, route, status).inc()


class RouteTemplates:
    """Maps a request path to its route's template, so that ids stay out of metric labels."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def of(self, path: str) -> str:
        if self._compiled is None:  # built on first use: every router is included by then
            self._compiled = [
                (compile_path(str(context.path))[0], str(context.path))
                for context in iter_route_contexts(self.app.routes)
            ]
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return "unmatched"
