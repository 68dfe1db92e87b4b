"""Directory HTTP API: the roster of member organisations and the reachability of their nodes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel, Field

from services.directory import domain, export_api, handlers, reference_api, store
from shared.auth import Principal, Role, require
from shared.contracts.directory import ORG_ID, OrganisationPublished
from shared.errors import Invalid, NotFound
from shared.service import ServiceContext, context_of

router = APIRouter()
router.include_router(reference_api.router)
router.include_router(export_api.router)
Context = Annotated[ServiceContext, Depends(context_of("directory"))]
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
    org_id: OrgId, record: OrganisationPublished, ctx: Context, _: Coordinator
) -> OrganisationPublished:
    if record.org_id != org_id:
        raise Invalid("the body's org_id differs from the URL's", field="org_id")
    return await handlers.publish_organisation(ctx, record)


class MembershipChange(BaseModel):
    action: domain.Membership
    reason: str | None = Field(default=None, max_length=500)


@router.post(
    "/organisations/{org_id}/membership",
    summary="Admit, reject, suspend, reinstate or let go of an organisation (hub only)",
    responses={409: {"description": "not allowed from the organisation's current status"}},
)
async def change_membership(
    org_id: OrgId, change: MembershipChange, ctx: Context, _: Coordinator
) -> OrganisationPublished:
    return await handlers.change_membership(ctx, org_id, change.action, change.reason)


@router.get("/links", summary="Reachability of other nodes: the last probe to each and its answer")
async def list_links(ctx: Context, _: Operator) -> list[Link]:
    async with ctx.pool.acquire() as conn:
        return [Link.model_validate(row) for row in await store.list_links(conn)]


@router.post(
    "/links/{org_id}/probe",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a probe to an organisation's node through the hub",
)
async def probe_link(org_id: OrgId, ctx: Context, _: Operator) -> ProbeSent:
    return ProbeSent(org_id=org_id, probe_id=await handlers.probe(ctx, org_id))
