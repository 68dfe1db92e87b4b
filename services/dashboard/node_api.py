"""The node's HTTP APIs as the pages call them: in-process, through the app's own ASGI interface,
with the visitor's own credentials.

The pages own no business data and bypass no rule: every read and every action goes through
the same API a member system uses, so roles, object checks, validation and audit apply to a
click exactly as to any client. The API's problem details come back as exceptions the pages
understand: 401, 403 and 404 become the matching page; 503 (the node's database or broker is
down) the "temporarily unavailable, your work is kept" page (``ApiUnavailable``, which no form
mistakes for a refusal of its fields); anything else a form can show beside its fields
(``ApiRefused``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request

from shared.auth.sessions import CSRF_HEADER, session_of
from shared.errors import DomainError, Forbidden, NotFound, Unauthenticated, Unavailable

# Reference data never changes while a node runs: fetched once per app (``ReferenceCache``).
_CACHED_PREFIXES = (
    "/api/v1/directory/reference/",
    "/api/v1/referrals/categories",
    "/api/v1/referrals/reasons",
)
_CACHE_SECONDS = 600.0


@dataclass
class ReferenceCache:
    """The reference data the pages read, by path, with when it was read: one per app, on its
    state, so it goes with the app (and two apps in one process, as in the tests, never
    answer from each other's)."""

    held: dict[str, tuple[float, Any]] = field(default_factory=dict)

    def get(self, path: str) -> Any | None:
        found = self.held.get(path)
        if found is None or time.monotonic() - found[0] >= _CACHE_SECONDS:
            return None
        return found[1]

    def put(self, path: str, body: Any) -> None:
        self.held[path] = (time.monotonic(), body)


def reference_cache(app: FastAPI) -> ReferenceCache:
    """The app's reference cache, made on its first use."""
    cache: ReferenceCache | None = getattr(app.state, "reference_cache", None)
    if cache is None:
        cache = app.state.reference_cache = ReferenceCache()
    return cache


class ApiRefused(DomainError):
    """The API refused a request; ``errors`` maps each offending field to what the API said."""

    def __init__(
        self,
        status: int,
        problem_type: str,
        detail: str,
        errors: list[tuple[str, str]],
        allowed: list[str] | None = None,
    ) -> None:
        super().__init__(detail, field=errors[0][0] if errors else None)
        self.status = status
        self.type = problem_type
        self.errors = errors
        self.allowed = allowed or []


class ApiUnavailable(Unavailable):
    """The API answered 503: ``dependency`` names what was down (``shared.outages``)."""

    def __init__(self, detail: str, dependency: str | None) -> None:
        super().__init__(detail)
        self.dependency = dependency


class NodeApi:
    """The node's API, called as the person looking at the page."""

    def __init__(self, request: Request) -> None:
        self._app = request.app
        self._headers: dict[str, str] = {}
        authorization = request.headers.get("authorization")
        if authorization is not None:
            self._headers["Authorization"] = authorization
        else:
            cookie = request.headers.get("cookie")
            session = session_of(request)
            if cookie is not None:
                self._headers["Cookie"] = cookie
            if session is not None:
                # The visitor's page already proved it came from this node's own form.
                self._headers[CSRF_HEADER] = session.csrf

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: httpx.QueryParams | dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one), or a page-level error."""
        cacheable = method == "GET" and not params and path.startswith(_CACHED_PREFIXES)
        cache = reference_cache(self._app)
        if cacheable and (held := cache.get(path)) is not None:
            return held
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://node", timeout=30
        ) as client:
            response = await client.request(
                method,
                path,
                params=params,
                json=json,
                content=content,
                headers={**self._headers, **(headers or {})},
            )
        _raise_for(response)
        if not response.content:
            return None
        body = response.json()
        if cacheable:
            cache.put(path, body)
        return body

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params={k: str(v) for k, v in params.items() if v})

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        if "content" in kwargs:  # a raw body (a file), not JSON
            return await self.call("POST", path, **kwargs)
        return await self.call("POST", path, json=json if json is not None else {}, **kwargs)

    async def put(self, path: str, json: Any) -> Any:
        return await self.call("PUT", path, json=json)

    async def delete(self, path: str) -> Any:
        return await self.call("DELETE", path)

    async def exists(self, path: str) -> bool:
        """Whether the node serves ``path`` at all (a service that has not landed answers 404
        or 405): the pages offer only what the node can do."""
        try:
            await self.get(path)
        except (NotFound, ApiRefused):
            return False
        return True


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or response.reason_phrase)
    if response.status_code == 401:
        raise Unauthenticated(detail)
    if response.status_code == 403:
        raise Forbidden(detail, field=problem.get("field"))
    if response.status_code == 404 and problem.get("field") is None:
        raise NotFound(detail)
    if response.status_code == 503:
        dependency = problem.get("dependency")
        raise ApiUnavailable(detail, dependency if isinstance(dependency, str) else None)
    errors: list[tuple[str, str]] = []
    for item in problem.get("errors") or []:
        if isinstance(item, dict) and item.get("field"):
            errors.append((str(item["field"]), str(item.get("detail") or detail)))
    if not errors and problem.get("field"):
        errors.append((str(problem["field"]), detail))
    slug = str(problem.get("type") or "").rsplit("/", 1)[-1] or "bad-request"
    allowed = problem.get("allowed")
    raise ApiRefused(
        response.status_code,
        slug,
        detail,
        errors,
        [str(a) for a in allowed] if isinstance(allowed, list) else None,
    )
