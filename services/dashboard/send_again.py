"""Sending a referral again, to another organisation, once it ended without the service
(declined, expired, or refused by the recipient's node): the directory's other suggestions
with their reasons, then the wizard from the person's details, as a new referral that follows
the first.

The person's data is carried over only when the case worker ticks the box that says so: the
earlier payload is then read through the API's audited ``/payload``, like any other reading of
it; otherwise the wizard asks for it again. The link between the two referrals stays on this
node (the API keeps ``follows`` out of the envelope): the new organisation is not told that
another one turned the person away.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request, Response

from services.dashboard import labels, wizard
from services.dashboard.lookups import Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared import i18n
from shared.auth import Principal, Role, require
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
REFERRALS = "/api/v1/referrals"
Staff = Annotated[Principal, Depends(require(Role.CASEWORKER, Role.FOCAL_POINT))]
ReferralId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")]
# The statuses after which the case can go to another organisation (and a refused envelope,
# which leaves the referral "sent"): the API's rule, said again so the page offers no dead end.
ENDED_WITHOUT_SERVICE = ("declined", "expired")
CANNOT_SEND_AGAIN = N_(
    "Only a referral your organisation sent that was declined, expired or refused can be sent"
    " to another organisation."
)
CHOOSE_ORGANISATION = N_("Choose the organisation to send the referral to.")
NO_OTHER_SUGGESTION = N_(
    "No other member organisation offers this service now. Ask the secretariat, or try again"
    " later: capacities change."
)
DATA_ERASED = N_(
    "The person's data of the earlier referral was erased (consent withdrawn or retention):"
    " enter it again."
)
CARRY = "yes"


def may_send_again(referral: dict[str, Any]) -> bool:
    """Whether this referral (as the API shows it) may be sent to another organisation."""
    return referral.get("box") == "outbox" and (
        referral.get("status") in ENDED_WITHOUT_SERVICE or bool(referral.get("refused_reason"))
    )


def carried_payload(payload: Any) -> dict[str, str]:
    """The earlier referral's payload as the wizard's form values (its ``payload.*`` fields):
    a box ticked is "yes", a number its digits."""
    values = payload.get("payload", payload) if isinstance(payload, dict) else {}
    carried = {}
    for name, value in (values if isinstance(values, dict) else {}).items():
        if isinstance(value, bool):
            carried[str(name)] = CARRY if value else ""
        elif value is not None:
            carried[str(name)] = str(value)
    return carried


@router.get("/referrals/{referral_id}/send-again")
async def send_again_page(request: Request, referral_id: ReferralId, principal: Staff) -> Response:
    return await _page(request, principal, referral_id)


@router.post("/referrals/{referral_id}/send-again")
async def send_again(
    request: Request,
    referral_id: ReferralId,
    principal: Staff,
    to_org: Annotated[str, Form(max_length=80)] = "",
    carry: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """On to the wizard with the need, the organisation chosen and (only if asked) the
    person's data of the earlier referral."""
    api = NodeApi(request)
    lang = language_of(request)
    gettext = i18n.translations(lang).gettext
    earlier = await api.get(f"{REFERRALS}/{referral_id}")
    if not may_send_again(earlier):
        return await _page(request, principal, referral_id, status_code=409)
    if not to_org:
        error = labels.FieldError(gettext(CHOOSE_ORGANISATION))
        return await _page(
            request, principal, referral_id, error=error, carry=carry == CARRY, status_code=422
        )
    draft = wizard.Draft(
        values={
            "category": str(earlier.get("category") or ""),
            "urgency": str(earlier.get("urgency") or "routine"),
            "to_org": to_org,
            "follows": referral_id,
            "key": str(uuid.uuid4()),
        }
    )
    if carry == CARRY:
        try:
            # The API records this reading in the audit log, as every reading of the data.
            draft.payload = carried_payload(await api.get(f"{REFERRALS}/{referral_id}/payload"))
        except ApiRefused:
            error = labels.FieldError(gettext(DATA_ERASED))
            return await _page(request, principal, referral_id, error=error, status_code=409)
    return await wizard.show_step(request, principal, "details", draft)


async def _page(
    request: Request,
    principal: Principal,
    referral_id: str,
    *,
    error: labels.FieldError | None = None,
    carry: bool = False,
    status_code: int = 200,
) -> Response:
    api = NodeApi(request)
    lang = language_of(request)
    lookups = Lookups(api, lang)
    names = await lookups.namer()
    earlier = await api.get(f"{REFERRALS}/{referral_id}")
    allowed = may_send_again(earlier)
    found = await api.get(f"{REFERRALS}/{referral_id}/suggestions") if allowed else []
    items = [i for i in found or [] if isinstance(i, dict)]
    return render(
        request,
        "send_again.html",
        status_code=status_code if allowed else 409,
        principal=principal,
        referral=earlier,
        allowed=allowed,
        cannot=CANNOT_SEND_AGAIN,
        category=names["category"].get(str(earlier.get("category")), earlier.get("category")),
        earlier_org=names["org"].get(str(earlier.get("to_org")), earlier.get("to_org")),
        status_label=labels.word(labels.STATUS, earlier.get("status"), lang)
        if not earlier.get("refused_reason")
        else labels.word(labels.CHANGE, "refused", lang),
        suggestions=wizard.present_suggestions(items, names, lang),
        no_suggestion=NO_OTHER_SUGGESTION,
        error=error,
        carry=carry,
    )
