"""The coordinator's dashboard on the hub: members by region, membership applications to admit
or reject, coverage gaps (from the directory), and the referral figures the audit service
keeps at the hub (flows between organisations, volumes by month and category, overdue and
median times to answer, by receiving organisation). Charts are plain HTML (bars and a
shaded matrix) that mirror themselves in Arabic and read well to a screen reader."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
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
from shared.auth.roles import NETWORK_FIGURE_READERS
from shared.errors import Forbidden, NotFound
from shared.i18n import N_

SMALL_COUNT = 5  # the audit API's "<5": counts from 1 to 4 (services/audit/domain.py)

router = APIRouter(route_class=PageRoute)
Coordinator = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.ADMIN))]
# Who reads the page: whoever the audit API gives the network's figures to (the same set).
Reader = Annotated[Principal, Depends(require(*NETWORK_FIGURE_READERS))]
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


INCIDENTS = "/api/v1/directory/incidents"
FLOOD = N_(
    "%(sender)s sent %(refused)s refused envelopes to %(reporter)s in %(minutes)s minutes "
    "(the last at %(last)s)."
)

SECOND_LINKS = "/api/v1/directory/second-links"
SECOND_LINK = N_(
    "A second network link made with the credentials of %(org)s was refused %(refused)s "
    "times, from %(first)s to %(last)s: someone may hold a copy of its node's key."
)

FEWER_THAN_FIVE = N_("fewer than 5")
HIDDEN = "x"  # the audit API's mark for a count hidden to protect a small one
HIDDEN_TO_PROTECT = N_("hidden, so that a small count cannot be worked out from the total")


@dataclass(frozen=True)
class Figure:
    """A count from the audit API as the page shows it: the number, or for a suppressed
    count its mark and words, never a number made up for it: a small count (the API's "<5",
    1 to 4), or one hidden beside it (the API's "x", 5 or more) so that the small one cannot
    be worked out by subtracting the shown counts from the total."""

    text: str  # "12", "0", "<5", "x"
    spoken: str | None  # its words, in the reader's language, for a suppressed count
    amount: int | None  # the count, None when suppressed
    hidden: bool = False  # suppressed to protect another count: 5 or more

    @property
    def suppressed(self) -> bool:
        return self.amount is None

    @property
    def at_least(self) -> int:
        """How far a bar may safely reach for it: the count, or for a suppressed one the
        most a small count can be (4), the least a hidden one is (5)."""
        if self.amount is not None:
            return self.amount
        return SMALL_COUNT if self.hidden else SMALL_COUNT - 1


def figure(value: Any, lang: str) -> Figure:
    if isinstance(value, bool):  # not a count
        value = None
    if isinstance(value, int | float):
        return Figure(str(int(value)), None, int(value))
    if isinstance(value, str) and value.startswith("<"):
        return Figure(value, i18n.translations(lang).gettext(FEWER_THAN_FIVE), None)
    if value == HIDDEN:
        return Figure(value, i18n.translations(lang).gettext(HIDDEN_TO_PROTECT), None, True)
    return Figure("0", None, 0)  # a cell the API did not list: no referral there


def scale(figures: list[Figure]) -> float:
    """The largest a bar can stand for: the largest count, or what a suppressed one's bar
    reaches (4 for "<5", 5 for a hidden one), whichever is more."""
    return max([f.at_least for f in figures], default=0)


def width(f: Figure, largest: float) -> int:
    """A bar's width class: a count's own; a suppressed count's hatched bar reaches as far as
    it safely can (4 for "<5", "somewhere up to here"; 5 for a hidden one, "from here on")."""
    return coverage.bar_width(f.at_least, largest)


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
    request: Request, principal: Reader, done: int = 0, applied: int = 0
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
            "services": labels.joined(
                (
                    names["category"].get(s["category"], s["category"])
                    for s in o.get("services", [])
                ),
                lang,
            ),
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
    # From the first of a month in the node's zone, as the API counts its months (not the
    # reader's own zone: the months must be the API's).
    local = now.astimezone(labels.node_zone())
    year = (local.replace(day=1) - timedelta(days=VOLUME_MONTHS * 31)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    flows, volumes, overdue, incidents, second_links = await asyncio.gather(
        _flows(api, names, lang, since=recent),
        _volumes(api, names, lang, since=year),
        _overdue(api, names, lang, since=recent),
        _incidents(api, names, lang),
        _second_links(api, names, lang),
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
        incidents=incidents,
        second_links=second_links,
        notice=notice,
        errors=errors or {},
        failed_org=failed_org,
        typed_reason=typed_reason,
        # An auditor reads the figures and the members and acts on no membership.
        can_manage=principal.has(Role.COORDINATOR, Role.ADMIN),
    )


async def _incidents(
    api: NodeApi, names: dict[str, dict[str, str]], lang: str
) -> list[dict[str, Any]]:
    """The floods of refused envelopes nodes reported (the hub's; none elsewhere), each in a
    sentence, with the sender to suspend if need be."""
    try:
        found = await api.call("GET", INCIDENTS)
    except (NotFound, ApiRefused, Forbidden):
        return []
    gettext = i18n.translations(lang).gettext
    return [
        {
            "sender": row["sender"],
            "text": gettext(FLOOD)
            % {
                "sender": names["org"].get(row["sender"], row["sender"]),
                "refused": row["refused"],
                "reporter": names["org"].get(row["reporter"], row["reporter"]),
                "minutes": max(1, round(float(row["minutes"]))),
                "last": labels.moment(row["last_at"], lang),
            },
        }
        for row in found or []
        if isinstance(row, dict)
    ]


async def _second_links(
    api: NodeApi, names: dict[str, dict[str, str]], lang: str
) -> list[dict[str, Any]]:
    """The second network links the hub refused for a member's credentials (the hub's; none
    elsewhere), each in a sentence, with the member whose credentials to renew."""
    try:
        found = await api.call("GET", SECOND_LINKS)
    except (NotFound, ApiRefused, Forbidden):
        return []
    gettext = i18n.translations(lang).gettext
    return [
        {
            "org": row["org_id"],
            "text": gettext(SECOND_LINK)
            % {
                "org": names["org"].get(row["org_id"], row["org_id"]),
                "refused": row["refused"],
                "first": labels.moment(row["opened_at"], lang),
                "last": labels.moment(row["last_at"], lang),
            },
        }
        for row in found or []
        if isinstance(row, dict)
    ]


async def _flows(
    api: NodeApi, names: dict[str, dict[str, str]], lang: str, *, since: datetime
) -> dict[str, Any] | None:
    """Referrals between organisations, as a matrix: senders in rows, receivers in columns."""
    rows = await _figures(api, "referrals", by=["from_org", "to_org"], **{"from": since})
    if rows is None:
        return None
    senders = sorted({str(r.get("from_org")) for r in rows})
    receivers = sorted({str(r.get("to_org")) for r in rows})
    cells = {
        (str(r.get("from_org")), str(r.get("to_org"))): figure(r.get("referrals"), lang)
        for r in rows
    }
    largest = round(scale(list(cells.values())))

    def shade(f: Figure) -> str:  # a suppressed cell is hatched, not shaded as some number
        return "suppressed" if f.amount is None else str(coverage.heat(f.amount, largest))

    return {
        "receivers": [(o, names["org"].get(o, o)) for o in receivers],
        "rows": [
            {
                "name": names["org"].get(sender, sender),
                "cells": [
                    {"value": cell, "heat": shade(cell)}
                    for cell in (cells.get((sender, r), figure(0, lang)) for r in receivers)
                ],
            }
            for sender in senders
        ],
    }


async def _volumes(
    api: NodeApi, names: dict[str, dict[str, str]], lang: str, *, since: datetime
) -> list[dict[str, Any]] | None:
    """Referrals by month (in the node's zone), each month's bar split by category beneath.

    A month's total is the API's own count for the month, not a sum of its categories: a
    suppressed category cell ("<5", or "x" beside it) cannot be added up."""
    by_category, by_month = await asyncio.gather(
        _figures(api, "referrals", by=["month", "category"], **{"from": since}),
        _figures(api, "referrals", by=["month"], **{"from": since}),
    )
    if by_category is None or by_month is None:
        return None
    months: dict[str, list[tuple[str, Figure]]] = {str(row.get("month")): [] for row in by_month}
    for row in by_category:
        months.setdefault(str(row.get("month")), []).append(
            (
                names["category"].get(str(row.get("category")), str(row.get("category"))),
                figure(row.get("referrals"), lang),
            )
        )
    totals = {str(row.get("month")): figure(row.get("referrals"), lang) for row in by_month}
    largest = scale(list(totals.values()))
    return [
        {
            "month": month,
            "total": totals.get(month, figure(0, lang)),
            "width": width(totals.get(month, figure(0, lang)), largest),
            "by_category": items,
        }
        for month, items in sorted(months.items())
    ]


async def _overdue(
    api: NodeApi, names: dict[str, dict[str, str]], lang: str, *, since: datetime
) -> list[dict[str, Any]] | None:
    """Per receiving organisation: received, overdue, the rate, and the median time to answer."""
    rows, times = await asyncio.gather(
        _figures(api, "overdue", **{"from": since}),
        _figures(api, "response-times", by=["to_org"], **{"from": since}),
    )
    if rows is None:
        return None
    medians = {str(r.get("to_org")): r.get("median_hours_to_answer") for r in times or []}
    shown = [(r, figure(r.get("overdue"), lang)) for r in rows]
    largest = scale([f for _, f in shown])

    def most_first(pair: tuple[dict[str, Any], Figure]) -> tuple[int, str]:
        # By how many went overdue; a suppressed count (1 to 4) between 0 and 5.
        f = pair[1]
        amount = f.amount if f.amount is not None else SMALL_COUNT if f.hidden else 1
        return (-amount, str(pair[0].get("org")))

    return [
        {
            "org": r.get("org"),
            "name": names["org"].get(str(r.get("org")), r.get("org")),
            "referrals": figure(r.get("referrals"), lang),
            "overdue": f,
            "rate": r.get("overdue_rate"),
            "median": medians.get(str(r.get("org"))),
            "width": width(f, largest),
        }
        for r, f in sorted(shown, key=most_first)
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
