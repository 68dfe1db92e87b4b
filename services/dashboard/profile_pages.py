"""The organisation's profile as the directory holds it: its services, their capacity (one
click: open, waiting list, closed), languages, where it works and its focal points; and what
the hub made of the changes the node asked for."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels, profile_form
from services.dashboard.lookups import DIRECTORY, Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared import i18n
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
CHANGE_ASKED = N_(
    "Asked: the hub checks the new record and publishes it to the whole network in a few"
    " seconds; if it refuses, its reason is shown below."
)
NOT_SENT = N_("Nothing was sent: correct the fields marked below.")


@router.get("/organisation")
async def organisation_page(
    request: Request, principal: Anyone, asked: int = 0, changed: int = 0
) -> Response:
    notice = CHANGE_ASKED if changed else CAPACITY_ASKED if asked else None
    return await _page(request, principal, notice=notice)


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
                "description": labels.said(service.get("description"), lang),
                "languages": [names["language"].get(c, c) for c in service.get("languages", [])],
                "places": places,
                "national": service.get("national", False),
                "hours": service.get("hours") or "",
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
                "at": labels.moment(c.get("requested_at"), lang),
                **_refusal_words(c, lang),
            }
            for c in changes or []
        ][:5],  # the API lists the newest first
        notice=notice,
        error=error,
        not_in_directory=NOT_IN_DIRECTORY,
    )


def _refusal_words(change: dict[str, Any], lang: str) -> dict[str, Any]:
    """The hub's reason for a refusal in the reader's words, and the part of the record it
    is about."""
    if change.get("state") != "refused" or not change.get("reason"):
        return {"part": "", "reason": None}
    part, reason = profile_form.refusal(str(change["reason"]), change.get("field"), lang)
    return {"part": part, "reason": reason}


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


@router.get("/organisation/edit")
async def edit_page(request: Request, principal: OwnStaff) -> Response:
    """The organisation's own record as a form, filled with what the directory holds."""
    record = await _own_record(request, principal)
    return await _edit(request, principal, record, profile_form.values_of(record), {})


@router.post("/organisation/edit")
async def edit_record(request: Request, principal: OwnStaff) -> Response:
    """The edited record, checked here, then signed by this node and sent to the hub through
    the same API a member system uses (``POST …/organisations/{org}/changes``)."""
    lang = language_of(request)
    record = await _own_record(request, principal)
    typed = profile_form.Typed(profile_form.values_typed(await request.form()))
    choices = await _choices(Lookups(NodeApi(request), lang))
    parsed = profile_form.parse(typed, record, lang, choices)
    if not parsed.errors:
        try:
            await NodeApi(request).post(
                f"{DIRECTORY}/organisations/{principal.org}/changes", parsed.record
            )
        except ApiRefused as refused:
            errors = profile_form.api_errors(refused.errors, refused.detail, parsed, lang)
            return await _edit(
                request, principal, record, typed.values, errors, status_code=refused.status
            )
        except Forbidden as refused:
            # The page already checked the role: what is left is the record's own rule (a
            # suspended member, a field only the coordinators set), said beside the form.
            at = profile_form.form_field(refused.field or "form", parsed)
            errors = {at: profile_form.reason(refused.detail, lang)}
            return await _edit(request, principal, record, typed.values, errors, status_code=403)
        return RedirectResponse("/organisation?changed=1", status_code=303)
    return await _edit(request, principal, record, typed.values, parsed.errors, status_code=422)


async def _own_record(request: Request, principal: Principal) -> dict[str, Any]:
    try:
        record = await NodeApi(request).get(f"{DIRECTORY}/organisations/{principal.org}")
    except ApiRefused:
        record = None
    if not isinstance(record, dict):
        raise NotFound("your organisation is not in this node's directory yet")
    return record


async def _choices(lookups: Lookups) -> profile_form.Choices:
    regions = await lookups.regions()
    return profile_form.Choices(
        cities={c["code"] for r in regions for c in r.get("cities", [])} or None,
        regions={r["code"] for r in regions} or None,
        languages=set((await lookups.language_names()).keys()) or None,
        categories={code for code, _ in await lookups.categories()} or None,
        populations={code for code, _ in await lookups.populations()} or None,
    )


async def _edit(
    request: Request,
    principal: Principal,
    record: dict[str, Any],
    values: profile_form.Values,
    errors: dict[str, labels.FieldError],
    *,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    lookups = Lookups(NodeApi(request), lang)
    typed = profile_form.Typed(values)
    regions = await lookups.regions()
    return render(
        request,
        "organisation_edit.html",
        status_code=status_code,
        principal=principal,
        name=labels.localised(record.get("name"), lang, principal.org),
        typed=typed,
        errors=errors,
        not_sent=NOT_SENT if errors else None,
        person_rows=profile_form.rows(typed, "focal_points"),
        service_rows=profile_form.rows(typed, "services"),
        capacity={
            s.get("service_id"): labels.word(labels.CAPACITY, s.get("capacity"), lang)
            for s in record.get("services") or []
        },
        regions=[(r["code"], labels.localised(r.get("label"), lang, r["code"])) for r in regions],
        cities=[
            (c["code"], labels.localised(c.get("label"), lang, c["code"]))
            for r in regions
            for c in r.get("cities", [])
        ],
        spoken=await lookups.languages(),
        categories=await lookups.categories(),
        populations=await lookups.populations(),
        costs=[(c, labels.word(COST, c, lang)) for c in profile_form.COSTS],
        sexes=[(c, labels.word(labels.SEX, c, lang)) for c in profile_form.SEXES],
        langs=[
            (code, i18n.language_name(code), i18n.direction(code)) for code in profile_form.LANGS
        ],
    )


COST = {"free": N_("Free"), "contribution": N_("A contribution is asked"), "fee": N_("Paid")}
