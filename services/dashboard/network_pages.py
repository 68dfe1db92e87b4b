"""The coordinator's dashboard on the hub: members by region, membership applications to admit
or reject, coverage gaps (from the directory), and the referral figures the audit service
keeps at the hub (flows between organisations, volumes by month and category, overdue and
median times to answer, by receiving organisation). Charts are plain HTML (bars and a
shaded matrix) that mirror themselves in Arabic and read well to a screen reader."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import coverage, labels
from services.dashboard.lookups import DIRECTORY, Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared import i18n
from shared.auth import Principal, Role, require
from shared.errors import Forbidden, NotFound
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.ADMIN))]
OrgId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,30}$")]
FIGURES = "/api/v1/audit/figures"
REASON_NEEDED = N_("Say why: the organisation is told.")
MEMBERSHIP_DONE = N_("Done: the directory publishes the change to every node.")
APPLICATION_RECORDED = N_(
    "The application is recorded: the organisation waits below for you to admit or reject it."
)
# What "at a glance" covers: the flows, overdue referrals and times to answer of the recent
# weeks (the work of now, and a bounded query however long the network's history), and the
# volumes of the last twelve months.
RECENT = timedelta(days=90)
VOLUME_MONTHS = 11  # and the current one


def _count(value: Any) -> float:
    """A figure as a number for drawing: a suppressed small count ("<5") draws as 2."""
    if isinstance(value, int | float):
        return float(value)
    return 2.0 if isinstance(value, str) and value.startswith("<") else 0.0


async def _figures(api: NodeApi, path: str, **params: Any) -> list[dict[str, Any]] | None:
    """A figure table from the audit service, or None where it is not kept (yet)."""
    try:
        found = await api.call("GET", f"{FIGURES}/{path}", params=httpx.QueryParams(_pairs(params)))
    except (NotFound, ApiRefused, Forbidden):
        return None
    return [row for row in found or [] if isinstance(row, dict)]


def _pairs(params: dict[str, Any]) -> list[tuple[str, str | int | float | bool | None]]:
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item.isoformat() if isinstance(item, datetime) else str(item)))
    return pairs


@router.get("/network")
async def network_page(
    request: Request, principal: Coordinator, done: int = 0, applied: int = 0
) -> Response:
    notice = APPLICATION_RECORDED if applied else MEMBERSHIP_DONE if done else None
    return await _page(request, principal, notice=notice)


async def _page(
    request: Request,
    principal: Principal,
    *,
    notice: str | None = None,
    errors: dict[str, labels.FieldError] | None = None,
    failed_org: str | None = None,
    typed_reason: str = "",
    status_code: int = 200,
) -> Response:
    api = NodeApi(request)
    lang = language_of(request)
    lookups = Lookups(api, lang)
    names = await lookups.namer()
    organisations = await lookups.organisations()
    region_of_city = await lookups.region_of_city()
    regions = [r["code"] for r in await lookups.regions()]
    categories = [code for code, _ in await lookups.categories()]

    by_region = coverage.members_by_region(organisations, region_of_city)
    largest = max(by_region.values(), default=0)
    member_bars = [
        {
            "label": names["region"].get(code, code),
            "value": by_region.get(code, 0),
            "width": coverage.bar_width(by_region.get(code, 0), largest),
        }
        for code in regions
    ]
    applicants = [
        {
            "org_id": o["org_id"],
            "name": labels.localised(o.get("name"), lang, o["org_id"]),
            "city": names["city"].get(o.get("city", ""), o.get("city", "")),
            "kind": o.get("kind"),
            "services": [
                names["category"].get(s["category"], s["category"]) for s in o.get("services", [])
            ],
        }
        for o in organisations
        if o.get("status") == "applicant"
    ]
    members = [
        {
            "org_id": o["org_id"],
            "name": labels.localised(o.get("name"), lang, o["org_id"]),
            "city": names["city"].get(o.get("city", ""), o.get("city", "")),
            "status": o.get("status"),
            "status_label": labels.word(labels.MEMBERSHIP, o.get("status"), lang),
            "services": len(o.get("services", [])),
        }
        for o in organisations
        if o.get("status") != "applicant"
    ]
    # The figures, side by side: each is one query at the hub over the referrals' facts.
    now = datetime.now(UTC)
    recent = now - RECENT
    year = (now.replace(day=1) - timedelta(days=VOLUME_MONTHS * 31)).replace(day=1)
    flows, volumes, overdue = await asyncio.gather(
        _flows(api, names, since=recent),
        _volumes(api, names, lang, since=year),
        _overdue(api, names, since=recent),
    )
    gaps = [
        {
            "region": names["region"].get(gap.region, gap.region),
            "missing": [names["category"].get(c, c) for c in gap.missing],
            "waitlist_only": [names["category"].get(c, c) for c in gap.waitlist_only],
            "covered": len(categories) - len(gap.missing),
            "width": coverage.bar_width(len(categories) - len(gap.missing), len(categories)),
        }
        for gap in coverage.coverage_gaps(organisations, regions, categories, region_of_city)
    ]
    return render(
        request,
        "network.html",
        status_code=status_code,
        principal=principal,
        member_bars=member_bars,
        member_total=sum(by_region.values()),
        applicants=applicants,
        members=members,
        gaps=gaps,
        category_total=len(categories),
        flows=flows,
        volumes=volumes,
        overdue=overdue,
        recent_days=RECENT.days,
        notice=notice,
        errors=errors or {},
        failed_org=failed_org,
        typed_reason=typed_reason,
    )


async def _flows(
    api: NodeApi, names: dict[str, dict[str, str]], *, since: datetime
) -> dict[str, Any] | None:
    """Referrals between organisations, as a matrix: senders in rows, receivers in columns."""
    rows = await _figures(api, "referrals", by=["from_org", "to_org"], **{"from": since})
    if rows is None:
        return None
    senders = sorted({str(r.get("from_org")) for r in rows})
    receivers = sorted({str(r.get("to_org")) for r in rows})
    cells = {(str(r.get("from_org")), str(r.get("to_org"))): r.get("referrals") for r in rows}
    largest = max((_count(v) for v in cells.values()), default=0)
    return {
        "receivers": [(o, names["org"].get(o, o)) for o in receivers],
        "rows": [
            {
                "name": names["org"].get(sender, sender),
                "cells": [
                    {
                        "value": cells.get((sender, receiver), 0),
                        "heat": coverage.heat(
                            round(_count(cells.get((sender, receiver), 0))), round(largest)
                        ),
                    }
                    for receiver in receivers
                ],
            }
            for sender in senders
        ],
    }


async def _volumes(
    api: NodeApi, names: dict[str, dict[str, str]], lang: str, *, since: datetime
) -> list[dict[str, Any]] | None:
    """Referrals by month, each month's bar split by category in a list beneath."""
    rows = await _figures(api, "referrals", by=["month", "category"], **{"from": since})
    if rows is None:
        return None
    months: dict[str, list[tuple[str, Any]]] = {}
    for row in rows:
        months.setdefault(str(row.get("month")), []).append(
            (
                names["category"].get(str(row.get("category")), str(row.get("category"))),
                row.get("referrals"),
            )
        )
    totals = {m: sum(_count(v) for _, v in items) for m, items in months.items()}
    largest = max(totals.values(), default=0)
    return [
        {
            "month": month,
            "total": _total_label([v for _, v in items]),
            "width": coverage.bar_width(totals[month], largest),
            "by_category": items,
        }
        for month, items in sorted(months.items())
    ]


def _total_label(values: list[Any]) -> str:
    """The sum of figures as a person should read it: exact where every count is, "<5" for
    one suppressed count alone, "N+" when suppressed counts add an unknown few."""
    known = sum(int(v) for v in values if isinstance(v, int))
    suppressed = sum(1 for v in values if not isinstance(v, int))
    if not suppressed:
        return str(known)
    return "<5" if known == 0 and suppressed == 1 else f"{known}+"


async def _overdue(
    api: NodeApi, names: dict[str, dict[str, str]], *, since: datetime
) -> list[dict[str, Any]] | None:
    """Per receiving organisation: received, overdue, the rate, and the median time to answer."""
    rows, times = await asyncio.gather(
        _figures(api, "overdue", **{"from": since}),
        _figures(api, "response-times", by=["to_org"], **{"from": since}),
    )
    if rows is None:
        return None
    medians = {str(r.get("to_org")): r.get("median_hours_to_answer") for r in times or []}
    largest = max((_count(r.get("overdue")) for r in rows), default=0)
    return [
        {
            "name": names["org"].get(str(r.get("org")), r.get("org")),
            "referrals": r.get("referrals"),
            "overdue": r.get("overdue"),
            "rate": r.get("overdue_rate"),
            "median": medians.get(str(r.get("org"))),
            "width": coverage.bar_width(_count(r.get("overdue")), largest),
        }
        for r in sorted(rows, key=lambda r: -_count(r.get("overdue")))
    ]


@router.post("/network/members/{org_id}/membership")
async def change_membership(
    request: Request,
    org_id: OrgId,
    principal: Coordinator,
    action: Annotated[str, Form(pattern=r"^(admit|reject|suspend|reinstate)$")],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Admit or reject an application (or suspend, reinstate a member); saying no needs a
    reason, which the page asks for beside the field."""
    lang = language_of(request)
    gettext = i18n.translations(lang).gettext
    if action in ("reject", "suspend") and not reason.strip():
        errors = {"reason": labels.FieldError(gettext(REASON_NEEDED))}
        return await _page(request, principal, errors=errors, failed_org=org_id, status_code=422)
    body = {"action": action, **({"reason": reason.strip()} if reason.strip() else {})}
    try:
        await NodeApi(request).post(f"{DIRECTORY}/organisations/{org_id}/membership", json=body)
    except ApiRefused as refused:
        errors = {
            name if name == "reason" else "form": labels.field_error(lang, detail)
            for name, detail in refused.errors or [("form", refused.detail)]
        }
        return await _page(
            request,
            principal,
            errors=errors,
            failed_org=org_id,
            typed_reason=reason,
            status_code=refused.status,
        )
    if action == "admit":  # what the coordinator does next: give it its credentials file
        return RedirectResponse(f"/network/members/{org_id}/credentials?admitted=1", 303)
    return RedirectResponse("/network?done=1", status_code=303)
