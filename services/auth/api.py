"""The auth HTTP API under ``/api/v1/auth``: log in for a bearer token, who am I, and the
administrators' management of staff accounts and member systems' API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.auth.clients_api import router as clients_router
from shared import audit_trail
from shared.auth import domain, session_store, store, throttle, tokens
from shared.auth.domain import (
    ACCESS_TOKEN_TTL,
    DISPLAY_NAME_MAX_LENGTH,
    ORG_PATTERN,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    TOKEN_NAME_MAX_LENGTH,
    USERNAME_PATTERN,
    ApiToken,
    Language,
    User,
)
from shared.auth.guards import require
from shared.auth.roles import Principal, Role
from shared.auth.session_store import EndedWhy
from shared.errors import NotFound
from shared.service import ServiceContext, service_context

router = APIRouter()

Context = Annotated[ServiceContext, Depends(service_context("auth"))]
Anyone = Annotated[Principal, Depends(require())]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
NO_STORE = {"Cache-Control": "no-store"}  # RFC 6749 §5.1: no cache keeps a secret


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)


class IssuedToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    role: Role
    org: str


class Me(BaseModel):
    subject: str
    kind: Literal["user", "system"]
    org: str
    roles: list[Role]
    display_name: str | None = None
    language: Language | None = None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
    role: Role
    display_name: str | None = Field(default=None, min_length=1, max_length=DISPLAY_NAME_MAX_LENGTH)
    language: Language = Language.FR


class UserOut(BaseModel):
    username: str
    role: Role
    display_name: str | None
    language: Language
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            username=user.username,
            role=user.role,
            display_name=user.display_name,
            language=user.language,
            disabled=user.disabled,
            created_at=user.created_at,
        )


class NewRole(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


class SessionOut(BaseModel):
    """An open page session of a user: when it began and was last used, nothing of where."""

    id: UUID
    created_at: datetime
    last_seen_at: datetime = Field(description="to the minute")
    expires_at: datetime

    @classmethod
    def of(cls, session: session_store.OpenSession) -> SessionOut:
        return cls(
            id=session.id,
            created_at=session.created_at,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
        )


class NewApiToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=TOKEN_NAME_MAX_LENGTH, description="which system")
    roles: list[Role] = Field(min_length=1)
    org: str | None = Field(
        default=None, pattern=ORG_PATTERN, description="the node's own organisation if omitted"
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenOut(BaseModel):
    id: UUID
    name: str
    org: str
    roles: list[Role]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> ApiTokenOut:
        return cls(
            id=token.id,
            name=token.name,
            org=token.org,
            roles=sorted(token.roles),
            created_by=token.created_by,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
        )


class CreatedApiToken(ApiTokenOut):
    token: str = Field(description="the secret: shown this once, never again")


@router.post(
    "/token",
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "too many attempts: the account or address is locked for a while"},
    },
)
async def log_in(
    credentials: Credentials, context: Context, request: Request, response: Response
) -> IssuedToken:
    """Exchange a username and password for a bearer access token (the one public route)."""
    user = await throttle.authenticate(
        request, context.pool, context.settings, credentials.username, credentials.password
    )
    secret = await store.issue_access_token(context.pool, user.username, ACCESS_TOKEN_TTL)
    response.headers.update(NO_STORE)
    return IssuedToken(
        access_token=secret,
        expires_in=int(ACCESS_TOKEN_TTL.total_seconds()),
        role=user.role,
        org=context.settings.org,
    )


@router.delete("/token", status_code=status.HTTP_204_NO_CONTENT)
async def log_out(_: Anyone, request: Request, context: Context) -> None:
    """Revoke the bearer token this request carries (a session cookie is left alone)."""
    secret = tokens.bearer_of(request.headers.get("authorization", ""))
    if secret is not None:
        await store.revoke_presented(context.pool, secret)
        await _audit(context, _, "session.logout", f"{_.kind}:{_.subject}")


@router.get("/me")
async def me(principal: Anyone, context: Context) -> Me:
    """Who the caller is, for any authenticated caller."""
    user = None
    if principal.kind == "user":
        user = await store.get_user(context.pool, principal.subject)
    return Me(
        subject=principal.subject,
        kind=principal.kind,
        org=principal.org,
        roles=sorted(principal.roles),
        display_name=None if user is None else user.display_name,
        language=None if user is None else user.language,
    )


@router.get("/users")
async def list_users(_: Admin, context: Context) -> list[UserOut]:
    return [UserOut.of(user) for user in await store.list_users(context.pool)]


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def add_user(new: NewUser, admin: Admin, context: Context) -> UserOut:
    user = await store.add_user(
        context.pool,
        new.username,
        new.password,
        new.role,
        display_name=new.display_name,
        language=new.language,
    )
    await _audit(context, admin, "user.created", f"user:{user.username}", {"role": user.role})
    return UserOut.of(user)


@router.post("/users/{username}/disable")
async def disable_user(username: str, admin: Admin, context: Context) -> UserOut:
    """Disable an account; its sessions and tokens stop working at once."""
    user = await store.disable_user(context.pool, username)
    await _audit(context, admin, "user.disabled", f"user:{user.username}")
    return UserOut.of(user)


@router.put(
    "/users/{username}/role",
    responses={404: {"description": "no such user"}, 409: {"description": "the last admin"}},
)
async def change_role(username: str, new: NewRole, admin: Admin, context: Context) -> UserOut:
    """Give an account another role; its sessions and login tokens end at once."""
    user = await store.change_role(context.pool, username, new.role)
    await _audit(context, admin, "user.role_changed", f"user:{user.username}", {"role": new.role})
    return UserOut.of(user)


@router.put(
    "/users/{username}/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such user"}},
)
async def change_password(username: str, new: NewPassword, admin: Admin, context: Context) -> None:
    """Set an account's password (give it to its owner in person); its sessions and login
    tokens end at once."""
    user = await store.change_password(context.pool, username, new.password)
    await _audit(context, admin, "user.password_changed", f"user:{user.username}")


@router.get("/users/{username}/sessions", responses={404: {"description": "no such user"}})
async def list_sessions(username: str, _: Admin, context: Context) -> list[SessionOut]:
    """The user's open page sessions, newest first."""
    user = await _user_or_404(context, username)
    sessions = await session_store.open_sessions_of(context.pool, user.username)
    return [SessionOut.of(session) for session in sessions]


@router.delete(
    "/users/{username}/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such user"}},
)
async def end_session(username: str, session_id: UUID, admin: Admin, context: Context) -> None:
    """End one session of the user: its cookie is refused from the next request on."""
    user = await _user_or_404(context, username)
    await session_store.end_one(context.pool, user.username, session_id)
    await _audit(
        context, admin, "session.ended", f"user:{user.username}", {"session": str(session_id)}
    )


@router.delete(
    "/users/{username}/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such user"}},
)
async def end_sessions(username: str, admin: Admin, context: Context) -> None:
    """End every open session of the user at once."""
    user = await _user_or_404(context, username)
    ended = await session_store.end_all_of(context.pool, user.username, EndedWhy.ADMIN)
    if ended:
        await _audit(
            context, admin, "session.ended_all", f"user:{user.username}", {"sessions": ended}
        )


async def _user_or_404(context: ServiceContext, username: str) -> User:
    user = await store.get_user(context.pool, username)
    if user is None:
        raise NotFound("no such user", field="username")
    return user


@router.get("/tokens")
async def list_api_tokens(_: Admin, context: Context) -> list[ApiTokenOut]:
    return [ApiTokenOut.of(token) for token in await store.list_api_tokens(context.pool)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_api_token(
    new: NewApiToken, admin: Admin, context: Context, response: Response
) -> CreatedApiToken:
    """Create an API token for a member system of an organisation; its secret is shown once."""
    settings = context.settings
    org = domain.check_token_org(
        new.org or settings.org, node_org=settings.org, on_hub=settings.is_hub
    )
    ttl = None if new.expires_in_days is None else timedelta(days=new.expires_in_days)
    token_id, secret = await store.create_api_token(
        context.pool, new.name, org, new.roles, admin.subject, ttl=ttl
    )
    token = await store.get_api_token(context.pool, token_id)
    assert token is not None
    await _audit(
        context,
        admin,
        "token.created",
        f"token:{token_id}",
        {"org": org, "roles": sorted(new.roles), "name": new.name},
    )
    response.headers.update(NO_STORE)
    return CreatedApiToken(**ApiTokenOut.of(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: UUID, admin: Admin, context: Context) -> None:
    """Revoke a token; it is refused from the next request on."""
    await store.revoke_token(context.pool, token_id)
    await _audit(context, admin, "token.revoked", f"token:{token_id}")


async def _audit(
    context: ServiceContext, principal: Principal, action: str, object: str, content: Any = None
) -> None:
    actor = audit_trail.actor_of(principal)
    await store.audit(context.pool, actor.name, action, object, content, org=context.settings.org)


# Member systems' clients (an API token and a NATS user each): services/auth/clients_api.py.
router.include_router(clients_router)
