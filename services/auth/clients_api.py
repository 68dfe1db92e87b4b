"""The administrators' management of member-system clients under ``/api/v1/auth/clients``:
an API token and a NATS nkey user each (services/auth/clients.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.auth import clients
from shared import audit_trail
from shared.auth import store
from shared.auth.guards import require
from shared.auth.roles import Principal, Role
from shared.errors import NotFound
from shared.feed import CLIENT_NAME, FEED
from shared.service import ServiceContext, service_context

router = APIRouter()

Context = Annotated[ServiceContext, Depends(service_context("auth"))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


class NewClient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=CLIENT_NAME.pattern, description="names its NATS inbox and feed")
    scopes: list[Role] = Field(min_length=1, description="the roles the system acts with")


class Feed(BaseModel):
    stream: str
    consumer: str
    backlog: int | None = Field(
        default=None,
        description="events waiting for the client (not yet delivered, or not yet "
        "acknowledged); absent when the nats-server did not say, or the client is revoked",
    )


class ClientOut(BaseModel):
    name: str
    org: str
    scopes: list[Role]
    token_id: str
    nkey: str = Field(description="the public half of its NATS nkey")
    inbox_prefix: str = Field(description="its requests' reply subjects start with it")
    feed: Feed
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="its API token's last use, over HTTP or NATS (to the minute)"
    )

    @classmethod
    def of(cls, client: clients.Client, backlog: int | None = None) -> ClientOut:
        return cls(
            name=client.name,
            org=client.org,
            scopes=sorted(Role(r) for r in client.roles),
            token_id=client.token_id,
            nkey=client.nkey,
            inbox_prefix=client.inbox_prefix,
            feed=Feed(stream=FEED, consumer=client.name, backlog=backlog),
            created_by=client.created_by,
            created_at=client.created_at,
            revoked_at=client.revoked_at,
            last_used_at=client.last_used_at,
        )


class CreatedClient(ClientOut):
    token: str = Field(description="the API token's secret, shown this once")
    nkey_seed: str = Field(description="the NATS nkey's seed (SU…), shown this once")


@router.get("/clients")
async def list_clients(_: Admin, context: Context) -> list[ClientOut]:
    """The node's clients, revoked ones included, with what waits in each active one's feed."""
    found = await clients.list_all(context.pool)
    active = [c.name for c in found if c.revoked_at is None]
    waiting = await clients.backlogs(context.bus, active) if active else {}
    return [ClientOut.of(client, waiting.get(client.name)) for client in found]


@router.post(
    "/clients",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "a client of this name exists"},
        403: {"description": "on the hub, which has no member-system clients"},
    },
)
async def create_client(
    new: NewClient, admin: Admin, context: Context, response: Response
) -> CreatedClient:
    """Create a member system's client of this node's organisation: its API token and NATS
    nkey seed are shown once; the node's nats-server accepts it at once."""
    made = await clients.create(
        context.pool,
        new.name,
        context.settings.org,
        new.scopes,
        admin.subject,
        on_hub=context.settings.is_hub,
    )
    await _audit(context, admin, "client.created", new.name, sorted(new.scopes))
    response.headers["Cache-Control"] = "no-store"
    return CreatedClient(
        **ClientOut.of(made.client).model_dump(), token=made.token, nkey_seed=made.nkey_seed
    )


@router.delete(
    "/clients/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such client"}},
)
async def revoke_client(name: str, admin: Admin, context: Context) -> None:
    """Revoke a client: its token is refused and its NATS connections are cut at once."""
    if await clients.get(context.pool, name) is None:
        raise NotFound("no such client", field="name")
    await clients.revoke(context.pool, name)
    await _audit(context, admin, "client.revoked", name)


async def _audit(
    context: ServiceContext,
    principal: Principal,
    action: str,
    name: str,
    scopes: list[Role] | None = None,
) -> None:
    actor = audit_trail.actor_of(principal)
    content = None if scopes is None else {"scopes": [s.value for s in scopes]}
    await store.audit(
        context.pool, actor.name, action, f"client:{name}", content, org=context.settings.org
    )
