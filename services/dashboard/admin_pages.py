"""The administrator's pages: the node's staff accounts and its member systems' API tokens,
through the auth API (a token's secret is shown once, on the page that created it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels
from services.dashboard.labels import FieldError
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render, settings_of
from shared import i18n
from shared.auth import Principal, Role, require
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
AUTH = "/api/v1/auth"
ROLE_LABELS = {
    "caseworker": N_("Case worker"),
    "focal_point": N_("Focal point"),
    "coordinator": N_("Coordinator"),
    "auditor": N_("Auditor"),
    "admin": N_("Administrator"),
}
MEMBER_ROLES = ("caseworker", "focal_point", "auditor", "admin")
HUB_ROLES = ("coordinator", "auditor", "admin")
USER_ADDED = N_("The account is created. Give the password to its owner in person.")
USER_DISABLED = N_("The account is disabled: its sessions and tokens no longer work.")
TOKEN_REVOKED = N_("The token is revoked.")


def roles_offered(request: Request, lang: str) -> list[tuple[str, str]]:
    hub = settings_of(request).is_hub
    return [(r, labels.word(ROLE_LABELS, r, lang)) for r in (HUB_ROLES if hub else MEMBER_ROLES)]


@router.get("/admin/users")
async def users_page(request: Request, principal: Admin, done: str = "") -> Response:
    notice = {"added": USER_ADDED, "disabled": USER_DISABLED}.get(done)
    return await _users(request, principal, notice=notice)


async def _users(
    request: Request,
    principal: Principal,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, FieldError] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    users = await NodeApi(request).get(f"{AUTH}/users")
    return render(
        request,
        "users.html",
        status_code=status_code,
        principal=principal,
        users=[{**u, "role_label": labels.word(ROLE_LABELS, u.get("role"), lang)} for u in users],
        roles=roles_offered(request, lang),
        typed=typed or {"role": "caseworker", "language": lang},
        errors=errors or {},
        notice=notice,
        languages_offered=[(c, i18n.language_name(c)) for c in i18n.SUPPORTED],
    )


@router.post("/admin/users")
async def add_user(
    request: Request,
    principal: Admin,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    role: Annotated[str, Form(max_length=40)] = "",
    display_name: Annotated[str, Form(max_length=400)] = "",
    language: Annotated[str, Form(max_length=5)] = "fr",
) -> Response:
    body: dict[str, Any] = {
        "username": username.strip(),
        "password": password,
        "role": role,
        "language": language,
    }
    if display_name.strip():
        body["display_name"] = display_name.strip()
    try:
        await NodeApi(request).post(f"{AUTH}/users", json=body)
    except ApiRefused as refused:
        lang = language_of(request)
        errors = {name: labels.field_error(lang, detail) for name, detail in refused.errors}
        if refused.status == 409:
            errors = {"username": FieldError(i18n.translations(lang).gettext(USERNAME_TAKEN))}
        if not errors:
            errors = {"form": labels.field_error(lang, refused.detail)}
        typed = {k: v for k, v in body.items() if k != "password"}
        typed.setdefault("display_name", "")
        return await _users(request, principal, typed=typed, errors=errors, status_code=422)
    return RedirectResponse("/admin/users?done=added", status_code=303)


USERNAME_TAKEN = N_("This username is already taken.")


@router.post("/admin/users/{username}/disable")
async def disable_user(
    request: Request, username: Annotated[str, Path(max_length=64)], principal: Admin
) -> Response:
    await NodeApi(request).post(f"{AUTH}/users/{username}/disable")
    return RedirectResponse("/admin/users?done=disabled", status_code=303)


@router.get("/admin/tokens")
async def tokens_page(request: Request, principal: Admin, done: str = "") -> Response:
    return await _tokens(request, principal, notice=TOKEN_REVOKED if done == "revoked" else None)


async def _tokens(
    request: Request,
    principal: Principal,
    *,
    created: dict[str, Any] | None = None,
    typed: dict[str, Any] | None = None,
    errors: dict[str, FieldError] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    tokens = await NodeApi(request).get(f"{AUTH}/tokens")
    return render(
        request,
        "tokens.html",
        status_code=status_code,
        principal=principal,
        tokens=[
            {
                **t,
                "roles_label": labels.joined(
                    (labels.word(ROLE_LABELS, r, lang) for r in t["roles"]), lang
                ),
                "created": labels.moment(t.get("created_at"), lang),
                "expires": labels.moment(t.get("expires_at"), lang),
                "last_used": labels.moment(t.get("last_used_at"), lang),
            }
            for t in tokens
        ],
        roles=roles_offered(request, lang),
        created=created,
        typed=typed or {"name": "", "roles": [], "expires_in_days": ""},
        errors=errors or {},
        notice=notice,
    )


@router.post("/admin/tokens")
async def create_token(
    request: Request,
    principal: Admin,
    name: Annotated[str, Form(max_length=400)] = "",
    roles: Annotated[list[str] | None, Form(max_length=5)] = None,
    expires_in_days: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    body: dict[str, Any] = {"name": name.strip(), "roles": roles or []}
    if expires_in_days.strip():
        body["expires_in_days"] = expires_in_days.strip()
    try:
        created = await NodeApi(request).post(f"{AUTH}/tokens", json=body)
    except ApiRefused as refused:
        lang = language_of(request)
        errors = {
            name.split(".")[0]: labels.field_error(lang, detail) for name, detail in refused.errors
        }
        if not errors:
            errors = {"form": labels.field_error(lang, refused.detail)}
        return await _tokens(
            request,
            principal,
            typed=body | {"expires_in_days": expires_in_days},
            errors=errors,
            status_code=422,
        )
    return await _tokens(request, principal, created=created, status_code=201)


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request,
    token_id: Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")],
    principal: Admin,
) -> Response:
    await NodeApi(request).delete(f"{AUTH}/tokens/{token_id}")
    return RedirectResponse("/admin/tokens?done=revoked", status_code=303)
