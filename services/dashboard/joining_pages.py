"""A new organisation joins, at the hub's dashboard: the coordinator records the application
file its operator sent (``relais node init`` wrote it), admits it on the network page, then
gives it its credentials file, renewed when it nears its end.

Everything goes through the directory's API as the coordinator (its checks of the
application's signature, its audit of applications and renewals); the pages only read the
file, say in the reader's language what the API refused, and put the hub's public material
into the credentials file (``hub_material``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import RedirectResponse

from services.dashboard import hub_material, labels
from services.dashboard.lookups import DIRECTORY
from services.dashboard.network_pages import Coordinator, OrgId
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import (
    PageRoute,
    error_page,
    language_of,
    render,
    settings_of,
)
from shared import i18n
from shared.auth import Principal
from shared.auth.sessions import CSRF_FIELD
from shared.errors import Forbidden, NotFound, Unavailable
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
# An application is a few kilobytes of public keys and a record: anything far larger is not one.
APPLICATION_MAX_BYTES = 64 * 1024
MAX_DAYS = 3650  # as the directory allows
DEFAULT_DAYS = 365

NO_FILE = N_("Choose the application file (application.json) the organisation sent.")
TOO_LARGE = N_("This file is too large to be an application.")
NOT_JSON = N_(
    "This file is not an application: it is not JSON. Choose the application.json that"
    " relais node init wrote."
)
MALFORMED = N_(
    "This file is not a valid application: a part is missing or has the wrong form. Ask the"
    " organisation for the application.json that relais node init wrote, unchanged."
)
BAD_SIGNATURE = N_(
    "The application's signature does not match its keys: the file was changed after relais"
    " node init wrote it. Ask the organisation to send it again, unchanged."
)
ALREADY_KNOWN = N_("This organisation is already in the directory: it has applied or is a member.")
DAYS_RANGE = N_("Enter a whole number of days, from 1 to 3650.")
ADMITTED = N_(
    "Admitted. Download its credentials file and send it to the organisation's operator"
    " (relais node join)."
)
RENEWED = N_("Renewed. Download the new credentials file and send it to the organisation.")
NOT_A_MEMBER = (
    N_("No credentials for this organisation"),
    N_("Credentials are given to active members only: admit or reinstate the organisation first."),
)
NO_MATERIAL = (
    N_("Credentials cannot be made on this server"),
    N_(
        "The hub's material folder (made by relais hub init, beside RELAIS_NATS_ACCOUNTS_FILE)"
        " cannot be read here. Ask the person who runs the hub's server."
    ),
)


def _hub_only(request: Request) -> None:
    """Only the hub admits organisations; elsewhere these pages do not exist."""
    if not settings_of(request).is_hub:
        raise NotFound("only the hub admits organisations")


def _days(raw: str) -> int | None:
    try:
        days = int(raw.strip())
    except ValueError:
        return None
    return days if 0 < days <= MAX_DAYS else None


@router.get("/network/applications/new")
async def application_form(request: Request, principal: Coordinator) -> Response:
    _hub_only(request)
    return _application_page(request, principal)


def _application_page(
    request: Request,
    principal: Principal,
    *,
    errors: dict[str, labels.FieldError] | None = None,
    typed_days: str = str(DEFAULT_DAYS),
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "application.html",
        status_code=status_code,
        principal=principal,
        errors=errors or {},
        typed_days=typed_days,
        max_days=MAX_DAYS,
    )


@router.post("/network/applications")
async def record_application(
    request: Request,
    principal: Coordinator,
    application: Annotated[UploadFile | None, File()] = None,
    valid_days: Annotated[str, Form(max_length=20)] = str(DEFAULT_DAYS),
) -> Response:
    """The application file, recorded by the directory as the API would from ``relais hub
    admit``: the organisation is then an applicant on the network page, to admit."""
    _hub_only(request)
    gettext = i18n.translations(language_of(request)).gettext
    errors: dict[str, labels.FieldError] = {}
    days = _days(valid_days)
    if days is None:
        errors["valid_days"] = labels.FieldError(gettext(DAYS_RANGE))
    raw = await application.read(APPLICATION_MAX_BYTES + 1) if application is not None else b""
    parsed: Any = None
    if not raw:
        errors["application"] = labels.FieldError(gettext(NO_FILE))
    elif len(raw) > APPLICATION_MAX_BYTES:
        errors["application"] = labels.FieldError(gettext(TOO_LARGE))
    else:
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            errors["application"] = labels.FieldError(gettext(NOT_JSON))
    if errors:
        return _application_page(
            request, principal, errors=errors, typed_days=valid_days, status_code=422
        )
    try:
        await NodeApi(request).post(
            f"{DIRECTORY}/applications", json={"application": parsed, "valid_days": days}
        )
    except Forbidden as refused:
        if refused.field is None or refused.field == CSRF_FIELD:
            raise  # the caller's own rights, or an expired form: the matching page
        errors["application"] = labels.FieldError(gettext(BAD_SIGNATURE), refused.detail)
        return _application_page(
            request, principal, errors=errors, typed_days=valid_days, status_code=403
        )
    except ApiRefused as refused:
        errors = _refusal(refused, language_of(request))
        return _application_page(
            request, principal, errors=errors, typed_days=valid_days, status_code=refused.status
        )
    return RedirectResponse("/network?applied=1", status_code=303)


def _refusal(refused: ApiRefused, lang: str) -> dict[str, labels.FieldError]:
    """What the directory refused, beside the field it concerns."""
    gettext = i18n.translations(lang).gettext
    if refused.status == 409:
        return {"application": labels.FieldError(gettext(ALREADY_KNOWN), refused.detail)}
    for field, detail in refused.errors:
        if field == "valid_days":
            return {"valid_days": labels.field_error(lang, detail)}
    return {"application": labels.FieldError(gettext(MALFORMED), refused.detail)}


@router.get("/network/members/{org_id}/credentials")
async def credentials_page(
    request: Request,
    org_id: OrgId,
    principal: Coordinator,
    admitted: int = 0,
    renewed: int = 0,
) -> Response:
    _hub_only(request)
    lang = language_of(request)
    api = NodeApi(request)
    organisation = await api.get(f"{DIRECTORY}/organisations/{org_id}")
    active = organisation.get("status") == "active"
    issued = await _issued(api, org_id) if active else None
    notice = ADMITTED if admitted else RENEWED if renewed else None
    return _credentials_page(request, principal, organisation, issued, lang, notice=notice)


def _credentials_page(
    request: Request,
    principal: Principal,
    organisation: dict[str, Any],
    issued: dict[str, Any] | None,
    lang: str,
    *,
    notice: str | None = None,
    errors: dict[str, labels.FieldError] | None = None,
    typed_days: str = str(DEFAULT_DAYS),
    status_code: int = 200,
) -> Response:
    org_id = organisation["org_id"]
    validity = None
    if issued is not None:
        validity = {
            "issued": labels.moment(issued.get("issued_at"), lang),
            "expires": labels.moment(issued.get("expires_at"), lang),
            "expires_iso": str(issued.get("expires_at") or ""),
            "nkey": issued.get("nkey"),
            "account": issued.get("account"),
        }
    return render(
        request,
        "credentials.html",
        status_code=status_code,
        principal=principal,
        org_id=org_id,
        org_name=labels.localised(organisation.get("name"), lang, org_id),
        status_label=labels.word(labels.MEMBERSHIP, organisation.get("status"), lang),
        active=organisation.get("status") == "active",
        validity=validity,
        notice=notice,
        errors=errors or {},
        typed_days=typed_days,
        max_days=MAX_DAYS,
    )


async def _issued(api: NodeApi, org_id: str) -> dict[str, Any] | None:
    try:
        found = await api.get(f"{DIRECTORY}/organisations/{org_id}/credentials")
    except (NotFound, ApiRefused):
        return None
    return found if isinstance(found, dict) else None


@router.get("/network/members/{org_id}/credentials/file")
async def download_credentials(request: Request, org_id: OrgId, principal: Coordinator) -> Response:
    """The credentials file for the organisation's operator (``relais node join`` installs
    it): public material only, but never kept in a cache."""
    _hub_only(request)
    api = NodeApi(request)
    organisation = await api.get(f"{DIRECTORY}/organisations/{org_id}")
    issued = await _issued(api, org_id) if organisation.get("status") == "active" else None
    if issued is None:
        return error_page(request, 409, NOT_A_MEMBER)
    try:
        credentials = hub_material.credentials_file(settings_of(request), issued)
    except Unavailable:
        return error_page(request, 503, NO_MATERIAL)
    return Response(
        credentials.model_dump_json(indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{org_id}-credentials.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/network/members/{org_id}/credentials")
async def renew_credentials(
    request: Request,
    org_id: OrgId,
    principal: Coordinator,
    valid_days: Annotated[str, Form(max_length=20)] = str(DEFAULT_DAYS),
) -> Response:
    """Renew from today for the chosen number of days (the same NATS key), then offer the
    new file: the directory records the renewal in its audit log."""
    _hub_only(request)
    lang = language_of(request)
    api = NodeApi(request)
    days = _days(valid_days)
    if days is not None:
        try:
            await api.post(
                f"{DIRECTORY}/organisations/{org_id}/credentials", json={"valid_days": days}
            )
        except ApiRefused as refused:
            error = {"valid_days": labels.field_error(lang, refused.detail)}
        else:
            return RedirectResponse(
                f"/network/members/{org_id}/credentials?renewed=1", status_code=303
            )
    else:
        error = {"valid_days": labels.FieldError(i18n.translations(lang).gettext(DAYS_RANGE))}
    organisation = await api.get(f"{DIRECTORY}/organisations/{org_id}")
    issued = await _issued(api, org_id) if organisation.get("status") == "active" else None
    return _credentials_page(
        request,
        principal,
        organisation,
        issued,
        lang,
        errors=error,
        typed_days=valid_days,
        status_code=422,
    )
