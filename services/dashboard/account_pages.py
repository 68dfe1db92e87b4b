"""The administrator's page for one account: its role, a new password, and its open sessions
(when each began and was last used, nothing of where from), through the auth API. A change of
role or password ends the account's sessions and login tokens at once (the auth service)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels
from services.dashboard.admin_pages import ROLE_LABELS, roles_offered
from services.dashboard.labels import FieldError
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared import i18n
from shared.auth import Principal, Role, require
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Username = Annotated[str, Path(pattern=r"^[a-z][a-z0-9._-]{2,39}$")]
SessionId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")]
AUTH = "/api/v1/auth"
NOTICES = {
    "ended": N_("The session is ended: its browser must log in again."),
    "ended-all": N_("All the sessions of this account are ended."),
    "role": N_("The role is changed. The account's sessions are ended: it logs in again."),
    "password": N_(
        "The password is set. Give it to its owner in person; the account's sessions are ended."
    ),
}
LAST_ADMIN = N_(
    "This is the last active administrator of the node: give another account this role first."
)


@router.get("/admin/users/{username}")
async def account_page(
    request: Request, username: Username, principal: Admin, done: str = ""
) -> Response:
    return await _account(request, principal, username, notice=NOTICES.get(done))


async def _account(
    request: Request,
    principal: Principal,
    username: str,
    *,
    errors: dict[str, FieldError] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    api = NodeApi(request)
    sessions = await api.get(f"{AUTH}/users/{username}/sessions")  # 404 for an unknown account
    users: list[dict[str, Any]] = await api.get(f"{AUTH}/users")
    user = next((u for u in users if u["username"] == username), {})
    return render(
        request,
        "account.html",
        status_code=status_code,
        principal=principal,
        username=username,
        user=user,
        role_label=labels.word(ROLE_LABELS, user.get("role"), lang),
        roles=roles_offered(request, lang),
        errors=errors or {},
        sessions=[
            {
                "id": s["id"],
                "created": labels.moment(s.get("created_at"), lang),
                "last_seen": labels.moment(s.get("last_seen_at"), lang),
                "expires": labels.moment(s.get("expires_at"), lang),
            }
            for s in sessions
        ],
        notice=notice,
    )


@router.post("/admin/users/{username}/role")
async def change_role(
    request: Request,
    username: Username,
    principal: Admin,
    role: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    return await _change(request, principal, username, "role", {"role": role})


@router.post("/admin/users/{username}/password")
async def change_password(
    request: Request,
    username: Username,
    principal: Admin,
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    return await _change(request, principal, username, "password", {"password": password})


async def _change(
    request: Request, principal: Principal, username: str, what: str, body: dict[str, str]
) -> Response:
    try:
        await NodeApi(request).put(f"{AUTH}/users/{username}/{what}", json=body)
    except ApiRefused as refused:
        lang = language_of(request)
        if refused.status == 409:
            error = FieldError(i18n.translations(lang).gettext(LAST_ADMIN))
        else:
            detail = refused.errors[0][1] if refused.errors else refused.detail
            error = labels.field_error(lang, detail)
        return await _account(request, principal, username, errors={what: error}, status_code=422)
    return _back(username, what)


@router.post("/admin/users/{username}/sessions/{session_id}/end")
async def end_session(
    request: Request, username: Username, session_id: SessionId, principal: Admin
) -> Response:
    await NodeApi(request).delete(f"{AUTH}/users/{username}/sessions/{session_id}")
    return _back(username, "ended")


@router.post("/admin/users/{username}/sessions/end")
async def end_sessions(request: Request, username: Username, principal: Admin) -> Response:
    await NodeApi(request).delete(f"{AUTH}/users/{username}/sessions")
    return _back(username, "ended-all")


def _back(username: str, done: str) -> Response:
    return RedirectResponse(f"/admin/users/{username}?done={done}", status_code=303)
