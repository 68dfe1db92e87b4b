"""The administrator's page of member-system clients (``/admin/clients``): each client's API
token and NATS nkey user, made and revoked through the auth API (services/auth/clients_api.py),
which checks, audits and applies them; the token and the nkey seed are shown once, on the page
that created them. The hub has none (services/auth/clients.py, ``NoClientsOnTheHub``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels
from services.dashboard.admin_pages import ROLE_LABELS
from services.dashboard.labels import FieldError
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render, settings_of
from shared import i18n
from shared.auth import Principal, Role, require
from shared.feed import CLIENT_NAME
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
ClientName = Annotated[str, Path(pattern=CLIENT_NAME.pattern)]
CLIENTS = "/api/v1/auth/clients"
# What a member system may act as: never an administrator (an API token never is).
SCOPES = ("caseworker", "focal_point", "auditor")
CLIENT_REVOKED = N_("The client is revoked: its token is refused and its NATS connections are cut.")
NAME_TAKEN = N_("A client of this name exists already (a revoked one keeps its name).")


@router.get("/admin/clients")
async def clients_page(request: Request, principal: Admin, done: str = "") -> Response:
    return await _clients(request, principal, notice=CLIENT_REVOKED if done == "revoked" else None)


async def _clients(
    request: Request,
    principal: Principal,
    *,
    created: dict[str, Any] | None = None,
    confirm: dict[str, Any] | None = None,
    typed: dict[str, Any] | None = None,
    errors: dict[str, FieldError] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    settings = settings_of(request)
    found = [] if settings.is_hub else await NodeApi(request).get(CLIENTS)
    return render(
        request,
        "clients.html",
        status_code=status_code,
        principal=principal,
        on_hub=settings.is_hub,
        nats_address=settings.nats_client_address,
        clients=[_row(c, lang) for c in found],
        scopes=[(s, labels.word(ROLE_LABELS, s, lang)) for s in SCOPES],
        created=created,
        confirm=confirm,
        typed=typed or {"name": "", "scopes": []},
        errors=errors or {},
        notice=notice,
    )


def _row(client: dict[str, Any], lang: str) -> dict[str, Any]:
    return {
        **client,
        "scopes_label": labels.joined(
            (labels.word(ROLE_LABELS, s, lang) for s in client["scopes"]), lang
        ),
        "created": labels.moment(client.get("created_at"), lang),
        "last_used": labels.moment(client.get("last_used_at"), lang),
        "revoked": labels.moment(client.get("revoked_at"), lang),
        "backlog": client["feed"].get("backlog"),
    }


@router.post("/admin/clients")
async def create_client(
    request: Request,
    principal: Admin,
    name: Annotated[str, Form(max_length=100)] = "",
    scopes: Annotated[list[str] | None, Form(max_length=5)] = None,
) -> Response:
    body = {"name": name.strip(), "scopes": scopes or []}
    try:
        created = await NodeApi(request).post(CLIENTS, json=body)
    except ApiRefused as refused:
        lang = language_of(request)
        errors = {
            field.split(".")[0]: labels.field_error(lang, detail)
            for field, detail in refused.errors
        }
        if refused.status == 409:
            errors = {"name": FieldError(i18n.translations(lang).gettext(NAME_TAKEN))}
        if not errors:
            errors = {"form": labels.field_error(lang, refused.detail)}
        return await _clients(request, principal, typed=body, errors=errors, status_code=422)
    return await _clients(request, principal, created=created, status_code=201)


@router.get("/admin/clients/{name}/revoke")
async def confirm_revoke(request: Request, name: ClientName, principal: Admin) -> Response:
    """A revocation cannot be undone: the page asks first (no script needed)."""
    return await _clients(request, principal, confirm={"name": name})


@router.post("/admin/clients/{name}/revoke")
async def revoke_client(request: Request, name: ClientName, principal: Admin) -> Response:
    await NodeApi(request).delete(f"{CLIENTS}/{name}")
    return RedirectResponse("/admin/clients?done=revoked", status_code=303)
