"""The administrator's view of a user's open sessions (when each began and was last used,
nothing of where from), and ending one or all of them, through the auth API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels
from services.dashboard.node_api import NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
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
}


@router.get("/admin/users/{username}/sessions")
async def sessions_page(
    request: Request, username: Username, principal: Admin, done: str = ""
) -> Response:
    lang = language_of(request)
    sessions = await NodeApi(request).get(f"{AUTH}/users/{username}/sessions")
    return render(
        request,
        "user_sessions.html",
        principal=principal,
        username=username,
        sessions=[
            {
                "id": s["id"],
                "created": labels.moment(s.get("created_at"), lang),
                "last_seen": labels.moment(s.get("last_seen_at"), lang),
                "expires": labels.moment(s.get("expires_at"), lang),
            }
            for s in sessions
        ],
        notice=NOTICES.get(done),
    )


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
    return RedirectResponse(f"/admin/users/{username}/sessions?done={done}", status_code=303)
