"""Directory HTTP API: the roster of member organisations and the reachability of their nodes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel, Field

from services.directory import (
    domain,
    export_api,
    handlers,
    keys_api,
    reference_api,
    search_api,
    second_links,
    store,
)
from shared import audit_trail
from shared.auth import Principal, Role, require
from shared.contracts.directory import CODE, ORG_ID, Capacity, OrganisationPublished
from shared.errors import Forbidden, Invalid, NotFound
from shared.federation import account
from shared.membership.joining import Application, KeyChange
from shared.service import ServiceContext, service_context

router = APIRouter()
router.include_router(reference_api.router)
router.include_router(export_api.router)
router.include_router(search_api.router)
router.include_router(keys_api.router)
Context = Annotated[ServiceContext, Depends(service_context("directory"))]
Anyone = Annotated[Principal, Depends(require())]
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.ADMIN))]
Operator = Annotated[Principal, Depends(require(Role.ADMIN, Role.COORDINATOR))]
OrgId = Annotated[str, Path(pattern=ORG_ID)]


class Link(BaseModel):
    org_id: str
    probe_id: str
    probed_at: datetime
    answered_at: datetime | None
    round_trip_ms: float | None


class ProbeSent(BaseModel):
    org_id: str
    probe_id: str


@router.get("/organisations", summary="Every organisation in the directory")
async def list_organisations(ctx: Context, _: Anyone) -> list[OrganisationPublished]:
    async with ctx.pool.acquire() as conn:
        return await store.list_organisations(conn)


@router.get("/organisations/{org_id}", summary="One organisation")
async def get_organisation(org_id: OrgId, ctx: Context, _: Anyone) -> OrganisationPublished:
    async with ctx.pool.acquire() as conn:
        record = await store.get_organisation(conn, org_id)
    if record is None:
        raise NotFound(f"no organisation {org_id}", field="org_id")
    return record


@router.put(
    "/organisations/{org_id}",
    summary="Publish a new version of an organisation (hub only) and broadcast it",
    responses={409: {"description": "stale or skipped version"}},
)
async def put_organisation(
    org_id: OrgId, record: OrganisationPublished, ctx: Context, principal: Coordinator
) -> OrganisationPublished:
    if record.org_id != org_id:
        raise Invalid("the body's org_id differs from the URL's", field="org_id")
    return await handlers.publish_organisation(ctx, record, audit_trail.actor_of(principal))


class MembershipChange(BaseModel):
    action: domain.Membership
    reason: str | None = Field(default=None, max_length=500)


@router.post(
    "/organisations/{org_id}/membership",
    summary="Admit, reject, suspend, reinstate or let go of an organisation (hub only)",
    responses={409: {"description": "not allowed from the organisation's current status"}},
)
async def change_membership(
    org_id: OrgId, change: MembershipChange, ctx: Context, principal: Coordinator
) -> OrganisationPublished:
    return await handlers.change_membership(
        ctx, org_id, change.action, change.reason, audit_trail.actor_of(principal)
    )


class Admission(BaseModel):
    application: Application
    valid_days: float = Field(
        default=365, gt=0, le=3650, description="how long the node's NATS credentials hold"
    )


class LeafCredential(BaseModel):
    """What the hub holds of an organisation's NATS credentials (no secret: a public key)."""

    org_id: str
    account: str
    nkey: str
    hub_domain: str
    hub_org: str
    issued_at: datetime
    expires_at: datetime


@router.post(
    "/applications",
    status_code=status.HTTP_201_CREATED,
    summary="Record a new node's signed application: the organisation as an applicant (hub only)",
    responses={
        409: {"description": "the organisation is already in the directory"},
        403: {"description": "the signature does not match the application's keys"},
    },
)
async def apply(
    admission: Admission, ctx: Context, principal: Coordinator
) -> OrganisationPublished:
    return await handlers.apply_for_membership(
        ctx, admission.application, admission.valid_days, audit_trail.actor_of(principal)
    )


@router.get(
    "/organisations/{org_id}/credentials",
    summary="The organisation's NATS account and leaf key, to issue its credentials (hub only)",
)
async def get_credential(org_id: OrgId, ctx: Context, _: Coordinator) -> LeafCredential:
    if not ctx.settings.is_hub:
        raise Forbidden("only the hub issues credentials")
    nkey, issued_at, expires_at = await handlers.leaf_credential(ctx, org_id)
    return _credential(ctx, org_id, nkey, issued_at, expires_at)


class Renewal(BaseModel):
    valid_days: float = Field(
        default=365, gt=0, le=3650, description="how long the renewed credentials hold"
    )
    key_change: KeyChange | None = Field(
        default=None, description="the node's signed request for a new NATS key (relais node rekey)"
    )


@router.post(
    "/organisations/{org_id}/credentials",
    summary="Renew the organisation's NATS credentials from now (hub only): the same key, or"
    " the new one of its signed key change",
    responses={
        404: {"description": "the organisation was never admitted"},
        403: {"description": "the key change is not signed by the organisation's key"},
    },
)
async def renew_credential(
    org_id: OrgId, renewal: Renewal, ctx: Context, principal: Coordinator
) -> LeafCredential:
    if not ctx.settings.is_hub:
        raise Forbidden("only the hub issues credentials")
    nkey, issued_at, expires_at = await handlers.renew_leaf_credential(
        ctx, org_id, renewal.valid_days, audit_trail.actor_of(principal), renewal.key_change
    )
    return _credential(ctx, org_id, nkey, issued_at, expires_at)


def _credential(
    ctx: ServiceContext, org_id: str, nkey: str, issued_at: datetime, expires_at: datetime
) -> LeafCredential:
    return LeafCredential(
        org_id=org_id,
        account=account(org_id),
        nkey=nkey,
        hub_domain=ctx.settings.hub_domain,
        hub_org=ctx.settings.hub_org,
        issued_at=issued_at,
        expires_at=expires_at,
    )


OwnStaff = Annotated[Principal, Depends(require(Role.FOCAL_POINT, Role.ADMIN))]


class ChangeRequest(BaseModel):
    org_id: str
    version: int
    requested_by: str | None = None
    requested_at: datetime | None = None
    state: Literal["requested", "published", "refused"]
    reason: str | None = None
    field: str | None = None


class CapacityChange(BaseModel):
    capacity: Capacity


@router.post(
    "/organisations/{org_id}/changes",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask the hub to publish a new version of your organisation's record (member node)",
    responses={403: {"description": "not your organisation"}, 409: {"description": "stale"}},
)
async def request_change(
    org_id: OrgId, record: OrganisationPublished, ctx: Context, principal: OwnStaff
) -> ChangeRequest:
    if record.org_id != org_id:
        raise Invalid("the body's org_id differs from the URL's", field="org_id")
    sent = await handlers.request_change(ctx, principal, record)
    return ChangeRequest(org_id=org_id, version=sent.version, state="requested")


@router.put(
    "/organisations/{org_id}/services/{service_id}/capacity",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Set one service's capacity: open, waitlist or closed (member node)",
)
async def set_capacity(
    org_id: OrgId,
    service_id: Annotated[str, Path(pattern=CODE)],
    change: CapacityChange,
    ctx: Context,
    principal: OwnStaff,
) -> ChangeRequest:
    sent = await handlers.set_capacity(ctx, principal, org_id, service_id, change.capacity)
    return ChangeRequest(org_id=org_id, version=sent.version, state="requested")


@router.get(
    "/organisations/{org_id}/changes",
    summary="Your organisation's change requests and what the hub made of them (member node)",
)
async def list_changes(org_id: OrgId, ctx: Context, principal: OwnStaff) -> list[ChangeRequest]:
    if principal.org != org_id:
        raise Forbidden("you see only your own organisation's change requests")
    async with ctx.pool.acquire() as conn:
        return [
            ChangeRequest.model_validate(r) for r in await store.list_change_requests(conn, org_id)
        ]


Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


@router.post(
    "/replica/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask the hub to send every current record again, to rebuild this node's replica",
)
async def replay_replica(ctx: Context, _: Admin) -> dict[str, str]:
    await handlers.request_replay(ctx, "asked by the node's administrator")
    return {"state": "requested"}


@router.get("/links", summary="Reachability of other nodes: the last probe to each and its answer")
async def list_links(ctx: Context, _: Operator) -> list[Link]:
    async with ctx.pool.acquire() as conn:
        return [Link.model_validate(row) for row in await store.list_links(conn)]


class FloodIncident(BaseModel):
    """A node's report: ``sender`` sent it ``refused`` envelopes it refused, from ``opened_at``
    to ``last_at``, past its budget; parked as this one incident."""

    incident_id: str
    reporter: str = Field(description="the node that refused them")
    sender: str = Field(description="the organisation that sent them")
    opened_at: datetime
    last_at: datetime
    refused: int
    minutes: float = Field(description="from the first refused envelope to the last")


@router.get(
    "/incidents",
    summary="Floods of refused envelopes the nodes reported (hub only): the sender to look into",
)
async def list_incidents(ctx: Context, _: Coordinator) -> list[FloodIncident]:
    if not ctx.settings.is_hub:
        raise NotFound("only the hub collects the nodes' incidents")
    async with ctx.pool.acquire() as conn:
        rows = await store.list_floods(conn)
    return [
        FloodIncident(
            **row, minutes=round((row["last_at"] - row["opened_at"]).total_seconds() / 60, 1)
        )
        for row in rows
    ]


class SecondLinkIncident(BaseModel):
    """Second leaf links refused for one member's credentials while its node was linked: a
    copy of its nkey may be in someone's hands (``refused`` times, ``opened_at`` to
    ``last_at``; ``host``: where the last one came from)."""

    incident_id: str
    org_id: str
    opened_at: datetime
    last_at: datetime
    refused: int
    host: str | None


@router.get(
    "/second-links",
    summary="Second network links refused for a member's credentials (hub only): a copied nkey",
)
async def list_second_links(ctx: Context, _: Coordinator) -> list[SecondLinkIncident]:
    if not ctx.settings.is_hub:
        raise NotFound("only the hub's network links are watched")
    return [SecondLinkIncident(**row) for row in await second_links.incidents(ctx)]


@router.post(
    "/links/{org_id}/probe",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a probe to an organisation's node through the hub",
)
async def probe_link(org_id: OrgId, ctx: Context, _: Operator) -> ProbeSent:
    return ProbeSent(org_id=org_id, probe_id=await handlers.probe(ctx, org_id))
