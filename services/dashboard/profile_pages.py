"""The organisation's profile as the directory holds it: its services, their capacity (one
click: open, waiting list, closed), languages, where it works and its focal points; and what
the hub made of the changes the node asked for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels
from services.dashboard.lookups import DIRECTORY, Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared.auth import Principal, Role, require
from shared.errors import Forbidden, NotFound
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Anyone = Annotated[Principal, Depends(require())]
OwnStaff = Annotated[Principal, Depends(require(Role.FOCAL_POINT, Role.ADMIN))]
ServiceId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,40}$")]
OrgId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,30}$")]
CAPACITY_ASKED = N_(
    "Asked: the hub publishes the new capacity to the whole network in a few seconds."
)
NOT_IN_DIRECTORY = N_("Your organisation is not in the directory yet.")


@router.get("/organisation")
async def organisation_page(request: Request, principal: Anyone, asked: int = 0) -> Response:
    return await _page(request, principal, notice=CAPACITY_ASKED if asked else None)


@router.get("/directory/{org_id}")
async def directory_page(request: Request, org_id: OrgId, principal: Anyone) -> Response:
    """Another organisation's record, as the directory publishes it (the address the
    notifications link to); one's own is the organisation page."""
    if org_id == principal.org:
        return RedirectResponse("/organisation", status_code=303)
    return await _page(request, principal, org_id=org_id)


async def _page(
    request: Request,
    principal: Principal,
    *,
    org_id: str | None = None,
    notice: str | None = None,
    error: labels.FieldError | None = None,
    status_code: int = 200,
) -> Response:
    api = NodeApi(request)
    lang = language_of(request)
    lookups = Lookups(api, lang)
    names = await lookups.namer()
    try:
        record = await api.get(f"{DIRECTORY}/organisations/{org_id or principal.org}")
    except (NotFound, ApiRefused):
        if org_id is not None:
            raise NotFound("no such organisation in the directory") from None
        record = None
    can_edit = (
        org_id is None
        and principal.has(Role.FOCAL_POINT, Role.ADMIN)
        and principal.org == record_org(record)
    )
    changes = []
    if can_edit:
        try:
            changes = await api.get(f"{DIRECTORY}/organisations/{principal.org}/changes")
        except (ApiRefused, NotFound, Forbidden):
            changes = []
    services = []
    for service in (record or {}).get("services", []):
        places = [names["city"].get(c, c) for c in service.get("cities", [])]
        places += [names["region"].get(r, r) for r in service.get("regions", [])]
        services.append(
            {
                "id": service["service_id"],
                "category": names["category"].get(service["category"], service["category"]),
                "description": labels.localised(service.get("description"), lang),
                "languages": [names["language"].get(c, c) for c in service.get("languages", [])],
                "places": places,
                "national": service.get("national", False),
                "capacity": service.get("capacity"),
                "capacity_label": labels.word(labels.CAPACITY, service.get("capacity"), lang),
                "capacity_set_at": labels.moment(service.get("capacity_set_at"), lang),
                "takes_referrals": service.get("takes_referrals", True),
            }
        )
    return render(
        request,
        "organisation.html",
        status_code=status_code,
        principal=principal,
        record=record,
        name=labels.localised(record.get("name"), lang, principal.org) if record else principal.org,
        city=names["city"].get(record.get("city", ""), record.get("city", "")) if record else "",
        status_label=labels.word(labels.MEMBERSHIP, record.get("status"), lang) if record else "",
        services=services,
        capacities=[(c, labels.word(labels.CAPACITY, c, lang)) for c in labels.CAPACITY],
        can_edit=can_edit,
        changes=[
            {
                "version": c.get("version"),
                "state": c.get("state"),
                "reason": c.get("reason") or "",
                "at": labels.moment(c.get("requested_at"), lang),
            }
            for c in changes or []
        ][-5:],
        notice=notice,
        error=error,
        not_in_directory=NOT_IN_DIRECTORY,
    )


def record_org(record: dict[str, object] | None) -> str | None:
    return str(record["org_id"]) if record else None


@router.post("/organisation/services/{service_id}/capacity")
async def set_capacity(
    request: Request,
    service_id: ServiceId,
    principal: OwnStaff,
    capacity: Annotated[str, Form(pattern=r"^(open|waitlist|closed)$")],
) -> Response:
    """One click: the service's capacity, signed by this node and published by the hub."""
    try:
        await NodeApi(request).put(
            f"{DIRECTORY}/organisations/{principal.org}/services/{service_id}/capacity",
            {"capacity": capacity},
        )
    except ApiRefused as refused:
        error = labels.field_error(language_of(request), refused.detail)
        return await _page(request, principal, error=error, status_code=refused.status)
    return RedirectResponse("/organisation?asked=1", status_code=303)
