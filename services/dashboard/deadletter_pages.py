"""The administrator's page of dead letters: the messages this node's consumers gave up on,
each with its type, consumer and reason (never its content), and the two things to do about
one: hand it to its consumer again once the cause is fixed, or set it aside with a reason.
Through the node's API (``/api/v1/node/dead-letters``), which checks the role and audits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import labels
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared import i18n
from shared.auth import Principal, Role, require
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
API = "/api/v1/node/dead-letters"
LetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]
STATES = {
    "open": N_("To handle"),
    "redelivered": N_("Redelivered"),
    "discarded": N_("Discarded"),
}
REDELIVERED = N_("The message was handed to its consumer again, and handled.")
DISCARDED = N_("The dead letter is set aside.")
FAILED_AGAIN = N_("The consumer failed again; the letter stays to handle. What it said:")
REFUSED = N_("This is no longer possible. What the node said:")
GIVE_A_REASON = N_("Say why you set it aside (no personal data).")


def when(value: Any, lang: str) -> str:
    """A time the API sent, in the node's zone (Morocco's unless set), in the reader's
    language."""
    return labels.moment(value, lang)


def why(letter: dict[str, Any], lang: str) -> str:
    gettext = i18n.translations(lang).gettext
    if letter.get("why") == "terminated":
        return gettext("Refused by the consumer")
    return gettext("Failed %(count)s times") % {"count": letter.get("deliveries") or "?"}


@router.get("/admin/dead-letters")
async def dead_letters_page(request: Request, principal: Admin, done: str = "") -> Response:
    notice = {"redelivered": REDELIVERED, "discarded": DISCARDED}.get(done)
    return await _page(request, principal, notice=notice)


async def _page(
    request: Request,
    principal: Principal,
    *,
    notice: str | None = None,
    failure: tuple[int, str, str] | None = None,  # (letter, what to say, the node's words)
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    letters = await NodeApi(request).get(API, limit=200)
    rows = [
        {
            **letter,
            "when": when(letter.get("at"), lang),
            "handled": when(letter.get("handled_at"), lang),
            "why_label": why(letter, lang),
            "state_label": labels.word(STATES, letter.get("state"), lang),
        }
        for letter in reversed(letters)  # newest first on a page
    ]
    return render(
        request,
        "dead_letters.html",
        status_code=status_code,
        principal=principal,
        rows=rows,
        notice=notice,
        failure=failure,
    )


@router.post("/admin/dead-letters/{letter_id}/redeliver")
async def redeliver(request: Request, letter_id: LetterId, principal: Admin) -> Response:
    try:
        await NodeApi(request).post(f"{API}/{letter_id}/redeliver")
    except ApiRefused as refused:
        said = FAILED_AGAIN if refused.type == "redelivery-failed" else REFUSED
        return await _page(
            request, principal, failure=(letter_id, said, refused.detail), status_code=409
        )
    return RedirectResponse(
        f"/admin/dead-letters?done=redelivered#letter-{letter_id}", status_code=303
    )


@router.post("/admin/dead-letters/{letter_id}/discard")
async def discard(
    request: Request,
    letter_id: LetterId,
    principal: Admin,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        await NodeApi(request).post(f"{API}/{letter_id}/discard", json={"reason": reason})
    except ApiRefused as refused:
        said = GIVE_A_REASON if refused.status == 422 else REFUSED
        return await _page(
            request,
            principal,
            failure=(letter_id, said, refused.detail),
            status_code=refused.status,
        )
    return RedirectResponse(
        f"/admin/dead-letters?done=discarded#letter-{letter_id}", status_code=303
    )
