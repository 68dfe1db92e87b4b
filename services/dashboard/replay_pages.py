"""The administrator's page to replay the outbox: publish again what this node's services
already sent, from a time (or, for one service, an outbox sequence) on, as ``relais outbox
replay --since`` does. Two steps, because a replay touches every member that receives these
events: the form, then a confirmation saying what will go out and that repeats are
recognised, then the counts. Through the node's API (``/api/v1/node/outbox/replay``), which
checks the role, validates and records the replay in the audit chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from babel.dates import format_date, format_time
from fastapi import APIRouter, Depends, Form, Request, Response

from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared.auth import Principal, Role, require
from shared.errors import Invalid
from shared.i18n import N_
from shared.outbox_replay import MOROCCO, Since, chosen_services

router = APIRouter(route_class=PageRoute)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
API = "/api/v1/node/outbox/replay"
PAGE = "/admin/outbox-replay"
SinceField = Annotated[str, Form(max_length=40)]
ServiceField = Annotated[str, Form(max_length=40)]
GIVE_A_START = N_(
    "Give a time (day and hour, Morocco's) or, with one service chosen, an outbox sequence."
)
SEQ_NEEDS_SERVICE = N_("A sequence numbers the outbox of one service: choose the service too.")
REFUSED = N_("The node refused the replay. What it said:")


def services_of(request: Request) -> list[str]:
    """The services this node runs: each has its outbox."""
    return sorted(request.app.state.contexts)


def wall_clock(moment: datetime, lang: str) -> str:
    """The day and hour as they read in Morocco: "mardi 1 décembre 2026 08:00"."""
    local = moment.astimezone(MOROCCO)
    return f"{format_date(local, 'full', locale=lang)} {format_time(local, 'short', locale=lang)}"


@router.get(PAGE)
async def replay_form(request: Request, principal: Admin) -> Response:
    return _form(request, principal)


def _form(
    request: Request,
    principal: Principal,
    *,
    since: str = "",
    service: str = "",
    failure: str | None = None,
    technical: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "outbox_replay.html",
        status_code=status_code,
        principal=principal,
        step="form",
        services=services_of(request),
        since=since,
        service=service,
        failure=failure,
        technical=technical,
    )


@router.post(f"{PAGE}/confirm")
async def confirm(
    request: Request, principal: Admin, since: SinceField = "", service: ServiceField = ""
) -> Response:
    """What the replay would do, to confirm: nothing is published yet."""
    try:
        start = Since.parse(since)
        chosen = chosen_services(services_of(request), service or None, start)
    except Invalid as refused:
        said = SEQ_NEEDS_SERVICE if refused.field == "service" and service == "" else GIVE_A_START
        return _form(
            request,
            principal,
            since=since,
            service=service,
            failure=said,
            technical=str(refused),
            status_code=422,
        )
    lang = language_of(request)
    return render(
        request,
        "outbox_replay.html",
        principal=principal,
        step="confirm",
        since=since,
        service=service,
        chosen=chosen,
        from_time=wall_clock(start.time, lang) if start.time is not None else None,
        from_seq=start.seq,
    )


@router.post(PAGE)
async def replay(
    request: Request, principal: Admin, since: SinceField = "", service: ServiceField = ""
) -> Response:
    try:
        answer = await NodeApi(request).post(API, json={"since": since, "service": service or None})
    except ApiRefused as refused:
        return _form(
            request,
            principal,
            since=since,
            service=service,
            failure=REFUSED,
            technical=refused.detail,
            status_code=refused.status,
        )
    return render(
        request,
        "outbox_replay.html",
        principal=principal,
        step="done",
        counts=sorted(answer["services"].items()),
        replayed=answer["replayed"],
    )
