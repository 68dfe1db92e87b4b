"""The HTTP face of a node or of one service alone: the services' routers under
``/api/v1/<service>``, health and readiness, metrics, the AsyncAPI document, problem details."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.routing import Match

from shared import asyncapi, problems, telemetry
from shared.runtime import NodeRuntime
from shared.service import Service
from shared.settings import NodeSettings

HTTP_REQUESTS = Counter("relais_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("relais_http_request_seconds", "HTTP request latency", ["method", "route"])
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.json", "/docs")


def create_app(settings: NodeSettings, services: Sequence[Service], *, title: str) -> FastAPI:
    runtime = NodeRuntime(settings, services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        app.state.contexts = runtime.contexts
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.runtime = runtime
    for service in services:
        app.include_router(service.router, prefix=f"/api/v1/{service.name}", tags=[service.name])
        if service.pages is not None:
            app.include_router(service.pages, include_in_schema=False)

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
            {"status": "ready" if ready else "not ready", "node": settings.node_id, "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json() -> dict[str, object]:
        return asyncapi.document()

    @app.middleware("http")
    async def measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        route = _route_of(app, request)
        started = time.perf_counter()
        response: Response = await call_next(request)
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response

    problems.install(app)
    telemetry.instrument(app)
    return app


def _route_of(app: FastAPI, request: Request) -> str:
    """The route's template, not the raw path: ids stay out of the metric labels."""
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
