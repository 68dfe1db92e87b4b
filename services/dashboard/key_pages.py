"""The administrator's keys page: the organisation's key pairs (fingerprints, state, validity),
a rotation asked for from the page, the revocation of the old keys after a suspected theft
(behind a confirmation that says what it costs), the re-seal of the retained data keys to the
current key, with its progress, and then the retired private keys destroyed (offered once
nothing needs them, behind the same confirmation). Through the directory's and the referrals'
APIs (``/api/v1/directory/keys``, ``/api/v1/referrals/keys/reseal``,
``/api/v1/referrals/keys/retired/forget``), which check the role and audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
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
KEYS = "/api/v1/directory/keys"
RESEAL = "/api/v1/referrals/keys/reseal"
FORGET = "/api/v1/referrals/keys/retired/forget"
STATES = {
    "current": N_("Current"),
    "next": N_("New, waiting for the hub to publish it"),
    "retired": N_("Retired (private key kept)"),
    "forgotten": N_("Retired (private key destroyed)"),
}
USES = {"ed25519": N_("Signature"), "x25519": N_("Encryption")}
ROTATED = N_(
    "New keys are made and sent to the hub. The node signs with them as soon as the hub has"
    " published them; the old keys stay valid for a week."
)
REVOKED = N_(
    "New keys are made and sent to the hub; the old keys end now, at every node as soon as"
    " the hub has published the change."
)
# On the hub, its own record is published where it is made: nothing waits.
ROTATED_AT_HUB = N_(
    "New keys are made and published to every node; the hub signs with them now. The old keys"
    " stay valid for a week."
)
REVOKED_AT_HUB = N_(
    "New keys are made and published to every node; the hub signs with them now, and the old"
    " keys end now."
)
RESEALED = N_("The next retained data keys are sealed again for the current key.")
FORGOTTEN = N_(
    "The retired private keys are destroyed. What was sealed for them still opens, through the"
    " data keys sealed again for the current key."
)
CONFIRM_REVOKE = N_("Type the organisation's identifier, %(org)s, to confirm.")


@router.get("/admin/keys")
async def keys_page(request: Request, principal: Admin, done: str = "") -> Response:
    hub = settings_of(request).is_hub
    notice = {
        "rotated": ROTATED_AT_HUB if hub else ROTATED,
        "revoked": REVOKED_AT_HUB if hub else REVOKED,
        "resealed": RESEALED,
        "forgotten": FORGOTTEN,
    }.get(done)
    return await _page(request, principal, notice=notice)


async def _page(
    request: Request,
    principal: Principal,
    *,
    notice: str | None = None,
    errors: dict[str, FieldError] | None = None,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    gettext = i18n.translations(lang).gettext
    api = NodeApi(request)
    held = await api.get(KEYS)
    progress = await api.get(RESEAL)
    return render(
        request,
        "keys.html",
        status_code=status_code,
        principal=principal,
        org_id=held["org_id"],
        rotation_waiting=held["rotation_waiting"],
        keys=[_row(key, lang) for key in held["keys"]],
        progress=progress,
        notice=notice,
        errors=errors or {},
        confirm_hint=gettext(CONFIRM_REVOKE) % {"org": held["org_id"]},
        forget=_forgettable(held["keys"], progress, lang),
        on_hub=settings_of(request).is_hub,
    )


def _forgettable(keys: list[dict[str, Any]], progress: dict[str, Any], lang: str) -> dict[str, Any]:
    """What stands between the retired private keys and their destruction, as the API checks
    it (services/referrals/reseal.py, check_forgettable): data keys still sealed for an older
    key, or a retired encryption key the directory still publishes as valid (until when)."""
    retired = [k for k in keys if k.get("state") == "retired"]
    now = datetime.now(UTC)
    ends = [_end(k) for k in retired if k.get("use") == "x25519"]
    still = [end for end in ends if end is None or end > now]
    valid_until = None
    if None in still:
        valid_until = i18n.translations(lang).gettext("without end")
    elif still:
        valid_until = labels.moment(max(end for end in still if end is not None), lang)
    return {"count": len(retired), "sealed": progress.get("left", 0), "valid_until": valid_until}


def _row(key: dict[str, Any], lang: str) -> dict[str, Any]:
    gettext = i18n.translations(lang).gettext
    until = key.get("valid_until")
    return {
        **key,
        "use_label": labels.word(USES, key.get("use"), lang),
        "state_label": labels.word(STATES, key.get("state"), lang),
        "from": labels.moment(key["valid_from"], lang) if key.get("valid_from") else "—",
        "until": labels.moment(until, lang) if until else gettext("without end"),
    }


def _end(key: dict[str, Any]) -> datetime | None:
    until = key.get("valid_until")
    return datetime.fromisoformat(until) if until else None


async def _rotate(request: Request, principal: Principal, *, revoke: bool) -> Response:
    try:
        await NodeApi(request).post(f"{KEYS}/rotation", json={"revoke_old": revoke})
    except ApiRefused as refused:
        lang = language_of(request)
        return await _page(
            request,
            principal,
            errors={"rotation": labels.field_error(lang, refused.detail)},
            status_code=409 if refused.status == 409 else 422,
        )
    return RedirectResponse(f"/admin/keys?done={'revoked' if revoke else 'rotated'}", 303)


@router.post("/admin/keys/rotate")
async def rotate(request: Request, principal: Admin) -> Response:
    return await _rotate(request, principal, revoke=False)


@router.post("/admin/keys/revoke")
async def revoke(
    request: Request, principal: Admin, confirm: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    org = settings_of(request).org
    if confirm.strip() != org:
        lang = language_of(request)
        message = i18n.translations(lang).gettext(CONFIRM_REVOKE) % {"org": org}
        return await _page(
            request, principal, errors={"confirm": FieldError(message)}, status_code=422
        )
    return await _rotate(request, principal, revoke=True)


@router.post("/admin/keys/reseal")
async def reseal(request: Request, principal: Admin) -> Response:
    await NodeApi(request).post(RESEAL)
    return RedirectResponse("/admin/keys?done=resealed", status_code=303)


@router.post("/admin/keys/forget")
async def forget(
    request: Request, principal: Admin, confirm: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    org = settings_of(request).org
    lang = language_of(request)
    if confirm.strip() != org:
        message = i18n.translations(lang).gettext(CONFIRM_REVOKE) % {"org": org}
        return await _page(
            request, principal, errors={"confirm_forget": FieldError(message)}, status_code=422
        )
    try:
        await NodeApi(request).post(FORGET)
    except ApiRefused as refused:
        return await _page(
            request,
            principal,
            errors={"forget": labels.field_error(lang, refused.detail)},
            status_code=409 if refused.status == 409 else 422,
        )
    return RedirectResponse("/admin/keys?done=forgotten", status_code=303)
