"""Directory exports over HTTP: the Open Referral HSDS 3.0 view (``/hsds/...``) and the 3W
"who does what where" CSV with HXL hashtags (``/exports/3w.csv``).

Any authenticated caller may read them: they hold what every member already sees in the
directory, less the focal points (see ``exports.hsds``). Only active organisations appear.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.directory import reference, store
from services.directory.exports import hsds, threew
from shared import audit_trail
from shared.auth import Principal, require
from shared.contracts.directory import OrganisationPublished
from shared.errors import NotFound
from shared.service import ServiceContext, service_context

router = APIRouter()
Context = Annotated[ServiceContext, Depends(service_context("directory"))]
Anyone = Annotated[Principal, Depends(require())]
# HSDS's own names for the paging parameters; pages count from 1.
PageNumber = Annotated[int, Query(alias="page", ge=1, le=10_000, description="from 1")]
PerPage = Annotated[int, Query(ge=1, le=500, description="how many per page")]
# An organisation's Relais code (``sanad``) or its HSDS id (a UUID).
OrganizationKey = Annotated[str, Path(min_length=2, max_length=64, pattern=r"^[a-z0-9_-]+$")]
ServiceKey = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]
# Excel reads a CSV without a byte-order mark in the machine's legacy code page, which
# garbles accents and Arabic. The mark sits before the first human header, so the hashtag
# row a HXL reader looks for is untouched.
BOM = "\ufeff"


async def _audit_export(ctx: ServiceContext, principal: Principal, what: str, detail: int) -> None:
    """An export of the directory is an audit record (who took it, when)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await audit_trail.record(
            conn,
            "directory",
            actor=audit_trail.actor_of(principal),
            action="directory.exported",
            object=what,
            content={"detail": detail},
        )


async def _records(ctx: ServiceContext) -> list[OrganisationPublished]:
    async with ctx.pool.acquire() as conn:
        return await store.list_organisations(conn)


class HsdsAbout(BaseModel):
    version: str
    openapi_url: str
    description: str


@router.get("/hsds", summary="What this HSDS view is: its HSDS version and API description")
async def hsds_about(request: Request, _: Anyone) -> HsdsAbout:
    return HsdsAbout(
        version=hsds.HSDS_VERSION,
        openapi_url=str(request.base_url) + "openapi.json",
        description="Relais directory: the active member organisations of the network and the "
        "services they offer, in Open Referral HSDS 3.0, with the extension object x-relais.",
    )


@router.get(
    "/hsds/organizations",
    summary="HSDS 3.0: the active organisations, each with its services nested, a page at a time",
    response_model_exclude_none=True,
)
async def hsds_organizations(
    ctx: Context, principal: Anyone, page_number: PageNumber = 1, per_page: PerPage = 50
) -> hsds.OrganizationPage:
    await _audit_export(ctx, principal, "directory:hsds", page_number)
    organizations = hsds.hsds_organizations(await _records(ctx), reference.reference())
    return hsds.page_of(hsds.OrganizationPage, organizations, page_number, per_page)


@router.get(
    "/hsds/organizations/{org_id}",
    summary="HSDS 3.0: one active organisation, by Relais code or HSDS id, with its services",
    response_model_exclude_none=True,
)
async def hsds_organization(
    org_id: OrganizationKey, ctx: Context, _: Anyone
) -> hsds.HsdsOrganization:
    record = hsds.find_organization(await _records(ctx), org_id)
    if record is None:
        raise NotFound(f"no active organisation {org_id}", field="org_id")
    return hsds.hsds_organization(record, reference.reference())


@router.get(
    "/hsds/services",
    summary="HSDS 3.0: the services of the active organisations, a page at a time",
    response_model_exclude_none=True,
)
async def hsds_services(
    ctx: Context,
    _: Anyone,
    organization_id: Annotated[
        str | None, Query(max_length=64, description="Relais code or HSDS id of one organisation")
    ] = None,
    page_number: PageNumber = 1,
    per_page: PerPage = 50,
) -> hsds.ServicePage:
    services = hsds.hsds_services(
        await _records(ctx), reference.reference(), organization=organization_id
    )
    return hsds.page_of(hsds.ServicePage, services, page_number, per_page)


@router.get(
    "/hsds/services/{service_id}",
    summary="HSDS 3.0: one service, by HSDS id, with its organisation nested",
    response_model_exclude_none=True,
)
async def hsds_service(service_id: ServiceKey, ctx: Context, _: Anyone) -> hsds.HsdsService:
    found = hsds.find_service(await _records(ctx), service_id)
    if found is None:
        raise NotFound(f"no service {service_id} of an active organisation", field="service_id")
    record, offer = found
    return hsds.hsds_service(record, offer, reference.reference(), with_organization=True)


@router.get(
    "/exports/3w.csv",
    summary="3W (who does what where): one row per organisation, service and place, HXL-tagged",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV, with a BOM"}},
)
async def three_w(ctx: Context, principal: Anyone) -> StreamingResponse:
    records = await _records(ctx)
    await _audit_export(ctx, principal, "directory:3w", len(records))
    zone = ZoneInfo(ctx.settings.timezone)  # the node's (RELAIS_TIMEZONE, checked at start)
    filename = threew.three_w_filename(datetime.now(UTC).astimezone(zone).date())

    def body() -> Iterator[str]:
        yield BOM
        rows = threew.three_w_rows(records, reference.reference(), zone=zone)
        yield from threew.csv_lines(rows)

    return StreamingResponse(
        body(),
        media_type="text/csv",
        headers={
            "Content-Disposition": f"attachment; filename={filename}",
            # Network data for members only: no shared cache keeps a copy.
            "Cache-Control": "no-store",
        },
    )
