"""The administrator's side of notifications: who is told what (the rule of each kind, the
default or the organisation's own) and the delivery log of what went out by e-mail, SMS and
webhook, through the notifications API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels
from services.dashboard.admin_pages import ROLE_LABELS
from services.dashboard.labels import FieldError
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared.auth import Principal, Role, require
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
NOTIFICATIONS = "/api/v1/notifications"
Kind = Annotated[str, Path(pattern=r"^[a-z_]{1,40}$")]
Before = Annotated[str, Query(max_length=40, pattern=r"^[0-9T:.+\- ]*$")]
LOG_PAGE = 50
RULE_SAVED = N_("The rule is saved: it applies from the next notification.")
RULE_RESET = N_("The rule is back to the default.")


@router.get("/admin/notifications")
async def rules_page(request: Request, principal: Admin, done: str = "") -> Response:
    notice = {"saved": RULE_SAVED, "reset": RULE_RESET}.get(done)
    return await _rules(request, principal, notice=notice)


async def _rules(
    request: Request,
    principal: Principal,
    *,
    failed_kind: str | None = None,
    errors: dict[str, FieldError] | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> Response:
    lang = language_of(request)
    rules = await NodeApi(request).get(f"{NOTIFICATIONS}/rules")
    return render(
        request,
        "notification_rules.html",
        status_code=status_code,
        principal=principal,
        rules=[
            {
                **rule,
                "label": labels.word(labels.NOTIFICATION_KIND, rule["kind"], lang),
                "roles_label": labels.joined(
                    (labels.word(ROLE_LABELS, r, lang) for r in rule.get("roles", [])), lang
                ),
                "channels_label": labels.joined(
                    (labels.word(labels.CHANNEL, c, lang) for c in rule.get("channels", [])),
                    lang,
                ),
            }
            for rule in rules
        ],
        roles=[(r, labels.word(ROLE_LABELS, r, lang)) for r in ROLE_LABELS],
        channels=[(c, labels.word(labels.CHANNEL, c, lang)) for c in labels.CHANNEL],
        failed_kind=failed_kind,
        errors=errors or {},
        notice=notice,
    )


@router.post("/admin/notifications/rules/{kind}")
async def save_rule(
    request: Request,
    kind: Kind,
    principal: Admin,
    roles: Annotated[list[str] | None, Form(max_length=10)] = None,
    channels: Annotated[list[str] | None, Form(max_length=5)] = None,
    enabled: Annotated[str, Form(max_length=3)] = "",
    case_worker: Annotated[str, Form(max_length=3)] = "",
    webhook: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    body: dict[str, Any] = {
        "enabled": enabled == "on",
        "roles": roles or [],
        "case_worker": case_worker == "on",
        "channels": sorted({*(channels or []), "in_app"}),
        "webhook": webhook == "on",
    }
    try:
        await NodeApi(request).put(f"{NOTIFICATIONS}/rules/{kind}", body)
    except ApiRefused as refused:
        lang = language_of(request)
        errors = {
            name.split(".")[0]: labels.field_error(lang, detail)
            for name, detail in refused.errors or [("form", refused.detail)]
        }
        return await _rules(
            request, principal, failed_kind=kind, errors=errors, status_code=refused.status
        )
    return RedirectResponse(f"/admin/notifications?done=saved#rule-{kind}", status_code=303)


@router.post("/admin/notifications/rules/{kind}/reset")
async def reset_rule(request: Request, kind: Kind, principal: Admin) -> Response:
    await NodeApi(request).delete(f"{NOTIFICATIONS}/rules/{kind}")
    return RedirectResponse(f"/admin/notifications?done=reset#rule-{kind}", status_code=303)


@router.get("/admin/deliveries")
async def delivery_log(request: Request, principal: Admin, before: Before = "") -> Response:
    lang = language_of(request)
    found = await NodeApi(request).get(f"{NOTIFICATIONS}/deliveries", limit=LOG_PAGE, before=before)
    rows = [
        {
            **d,
            "kind_label": labels.word(labels.DELIVERY_KIND, d.get("kind"), lang),
            "channel_label": labels.word(labels.DELIVERY_CHANNEL, d.get("channel"), lang),
            "state_label": labels.word(labels.DELIVERY_STATE, d.get("state"), lang),
            "created": labels.moment(d.get("created_at"), lang),
            "sent": labels.moment(d.get("sent_at"), lang),
            "attempts_shown": [
                {
                    **a,
                    "at": labels.moment(a.get("at"), lang),
                    "outcome": labels.word(labels.DELIVERY_STATE, a.get("outcome"), lang),
                }
                for a in d.get("attempt_log") or []
            ],
        }
        for d in found
    ]
    return render(
        request,
        "deliveries.html",
        principal=principal,
        rows=rows,
        older=found[-1]["created_at"] if len(found) == LOG_PAGE else None,
    )
