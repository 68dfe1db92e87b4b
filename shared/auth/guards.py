"""Who is calling: a request's credentials become a ``Principal``, and ``require`` guards a
route with the roles allowed on it.

Credentials are a bearer token (a user's access token or a member system's API token, each
held to ``api_requests_per_minute``: 429 beyond) or, for the pages, the session cookie (its
session looked up in the database each time: 503 while the database is down). A
request that sends an ``Authorization`` header is judged by it alone: a bad token is refused
even if a valid cookie came along.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute

from shared import audit_trail
from shared.auth import domain, session_store, store, throttle, tokens
from shared.auth.roles import Principal, Role
from shared.auth.sessions import session_of, verify_csrf
from shared.contracts.audit import Outcome
from shared.errors import Forbidden, Unauthenticated
from shared.service import context_of


async def principal_of(request: Request) -> Principal:
    """The authenticated caller of ``request`` (looked up once per request)."""
    cached = getattr(request.state, "auth_principal", None)
    if isinstance(cached, Principal):
        return cached
    context = context_of("auth")(request)
    authorization = request.headers.get("authorization")
    if authorization is not None:
        secret = tokens.bearer_of(authorization)
        grant = None if secret is None else await store.grant_of(context.pool, secret)
        if grant is None:
            raise Unauthenticated("invalid, expired or revoked token")
        # Per token, not per caller: one member system's runaway loop slows only itself.
        await throttle.of(request, context.settings).check_token(str(grant.token_id))
        principal = domain.principal_for(grant, context.settings.org)
    else:
        session = session_of(request)
        if session is None:
            raise Unauthenticated("log in, or send a bearer token")
        # Looked up on every request: an ended session is refused wherever its cookie went.
        holder = await session_store.holder_of(context.pool, session.secret)
        if holder is None or holder.username != session.username:
            raise Unauthenticated("this session has ended; log in again")
        # The cookie comes along with any request the browser makes, forged ones included.
        await verify_csrf(request, session)
        principal = domain.user_principal(holder.username, holder.role, context.settings.org)
    request.state.auth_principal = principal
    return principal


@dataclass(frozen=True)
class RoleRequirement:
    """A FastAPI dependency admitting callers with one of ``roles`` (any caller if empty).

    Its ``roles`` stay inspectable, so that a test can list who may call each route.
    """

    roles: frozenset[Role]

    async def __call__(self, request: Request) -> Principal:
        principal = await principal_of(request)
        if self.roles and not principal.has(*self.roles):
            needed = ", ".join(sorted(self.roles))
            await _audit_refusal(request, principal)
            raise Forbidden(f"this needs one of the roles: {needed}")
        return principal


async def _audit_refusal(request: Request, principal: Principal) -> None:
    """A refused authorisation is an audit record: who, which route (its template, no ids)."""
    context = context_of("auth")(request)
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    actor = audit_trail.actor_of(principal)
    await store.audit(
        context.pool,
        actor.name,
        "access.refused",
        f"route:{request.method} {path}"[:200],
        None,
        Outcome.REFUSED,
        org=context.settings.org,
    )


def require(*roles: Role) -> RoleRequirement:
    """``Depends(require(Role.ADMIN, Role.COORDINATOR))``; ``require()`` admits any caller."""
    return RoleRequirement(frozenset(Role(role) for role in roles))


@dataclass(frozen=True)
class GuardedRoute:
    """A route of an app and the role requirements its caller must meet (none: public)."""

    method: str
    path: str
    requirements: tuple[RoleRequirement, ...]


def guarded_routes(routes: Sequence[BaseRoute]) -> Iterator[GuardedRoute]:
    """Each HTTP route of ``routes`` (``app.routes``), included routers walked through, with the
    requirements found anywhere in its dependencies: who may call what, for tests and reviews."""
    for context in iter_route_contexts(routes):
        dependant = getattr(context, "dependant", None)
        if not isinstance(dependant, Dependant) or not context.methods:
            continue  # not a FastAPI endpoint (the docs pages, a mount)
        requirements = tuple(_requirements_in(dependant))
        for method in sorted(context.methods):
            yield GuardedRoute(method, str(context.path), requirements)


def _requirements_in(dependant: Dependant) -> Iterator[RoleRequirement]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RoleRequirement):
            yield dependency.call
        yield from _requirements_in(dependency)
