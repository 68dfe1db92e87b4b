"""The member workspace's referral pages: the inbox and outbox (filters, a clock to each
deadline, kept live), one referral (its history, the actions its state allows, the person's
data only after an explicit click), all through the referrals API."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import conversation, documents, labels, send_again, wizard
from services.dashboard.lookups import Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render, settings_of
from shared import i18n
from shared.auth import Principal, Role, require
from shared.errors import Forbidden, NotFound
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
router.include_router(send_again.router)
REFERRALS = "/api/v1/referrals"
Reader = Annotated[Principal, Depends(require(Role.CASEWORKER, Role.FOCAL_POINT, Role.AUDITOR))]
Anyone = Annotated[Principal, Depends(require())]
Staff = Annotated[Principal, Depends(require(Role.CASEWORKER, Role.FOCAL_POINT))]
ReferralId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")]
Box = Annotated[str, Query(pattern=r"^(inbox|outbox)$")]
Code = Annotated[str, Query(max_length=40, pattern=r"^[a-z0-9_]*$")]
ACTIONS = ("accept", "decline", "start", "complete", "close", "withdraw", "revoke-consent")
# Which list of reason codes an action takes its reason from.
REASON_KIND = {
    "decline": "decline",
    "close": "close",
    "complete": "outcome",
    "withdraw": "withdraw",
}
ACTION_DONE = N_("Done: the other organisation is told.")
# Sent is not received: the other node confirms it has the referral, and only then is the
# other organisation told (the status moves on to "received").
SENT_NOT_YET_RECEIVED = N_(
    "Sent. It will show “%(received)s” when the other organisation's node confirms it has it."
)
CHOOSE_REASON = N_("Choose a reason.")
WAITING_FOR_ANSWER = N_("Nothing is needed from you now: the other organisation answers.")
# What a person most likely wants comes first: the step forward. The steps that end or undo
# a referral come last, apart and drawn as secondary buttons, so nobody withdraws by habit.
FORWARD = ("accept", "start", "complete")
ENDING = ("decline", "close", "withdraw", "revoke-consent")
NEEDS_REASON = ("decline", "close")
PAYLOAD_SHOWN = N_("This reading of the personal data is recorded in the audit log.")
NOTE_MAX = 2000
YES = N_("Yes")
NO = N_("No")
# History steps that point at another referral (sending again), said with its organisation.
LINKED_CHANGE = {
    "sent_again": N_("Sent again, to %(org)s"),
    "follows": N_("Follows the referral to %(org)s"),
}


@router.get("/referrals")
async def referral_list(
    request: Request,
    principal: Reader,
    box: Box = "inbox",
    status: Code = "",
    urgency: Code = "",
    category: Code = "",
    after: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    api = NodeApi(request)
    lang = language_of(request)
    lookups = Lookups(api, lang)
    filters = {"status": status, "urgency": urgency, "category": category}
    rows, older = await _rows(api, lookups, lang, box, filters, after)
    chosen = {"box": box, **{k: v for k, v in filters.items() if v}}
    return render(
        request,
        "referrals.html",
        principal=principal,
        box=box,
        filters=filters,
        rows=rows,
        statuses=[(c, labels.word(labels.STATUS, c, lang)) for c in labels.STATUS],
        urgencies=[(c, labels.word(labels.URGENCY, c, lang)) for c in labels.URGENCY],
        categories=await lookups.categories(),
        # Only the newest page keeps itself up to date; an older one stays as it was read.
        live_url=None if after else "/referrals/rows?" + urlencode(chosen),
        older_url=None if older is None else "/referrals?" + urlencode({**chosen, "after": older}),
        newest_url="/referrals?" + urlencode(chosen) if after else None,
        can_send=principal.has(Role.CASEWORKER, Role.FOCAL_POINT),
    )


@router.get("/referrals/rows")
async def referral_rows(
    request: Request,
    principal: Reader,
    box: Box = "inbox",
    status: Code = "",
    urgency: Code = "",
    category: Code = "",
) -> Response:
    """The rows of a list alone, which the list page fetches again every few seconds."""
    api = NodeApi(request)
    lang = language_of(request)
    filters = {"status": status, "urgency": urgency, "category": category}
    rows, _ = await _rows(api, Lookups(api, lang), lang, box, filters)
    return render(request, "referral_rows.html", principal=principal, box=box, rows=rows)


async def _rows(
    api: NodeApi,
    lookups: Lookups,
    lang: str,
    box: str,
    filters: dict[str, str],
    after: str = "",
    limit: int = 0,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a box's rows, and the cursor of the next (older) page if there is one."""
    found = await api.get(REFERRALS, box=box, after=after, limit=limit, **filters)
    orgs = await lookups.org_names()
    categories = dict(await lookups.categories())
    items = found.get("items", []) if isinstance(found, dict) else found
    older = found.get("next") if isinstance(found, dict) else None
    return [_row(item, orgs, categories, lang) for item in items or []], older


async def waiting_for_answer(
    api: NodeApi, lang: str, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The newest referrals of the inbox that wait for this organisation's answer (at most
    ``limit``), and whether there are more."""
    rows, older = await _rows(
        api, Lookups(api, lang), lang, "inbox", {"status": "received"}, "", limit
    )
    return rows, older is not None


def _row(
    item: dict[str, Any], orgs: dict[str, str], categories: dict[str, str], lang: str
) -> dict[str, Any]:
    other = item.get("from_org") if item.get("box") == "inbox" else item.get("to_org")
    return {
        "id": item.get("referral_id"),
        "other": orgs.get(str(other), str(other)),
        "from_org": orgs.get(str(item.get("from_org")), item.get("from_org")),
        "to_org": orgs.get(str(item.get("to_org")), item.get("to_org")),
        "category": categories.get(str(item.get("category")), item.get("category")),
        "status": item.get("status"),
        "status_label": labels.word(labels.STATUS, item.get("status"), lang),
        "urgency": item.get("urgency"),
        "urgency_label": labels.word(labels.URGENCY, item.get("urgency"), lang),
        "created": labels.moment(item.get("created_at"), lang),
        "updated": labels.moment(item.get("updated_at"), lang),
        "clock": labels.clock(item, lang),
        "unread": item.get("unread_messages") or 0,
    }


@router.get("/referrals/{referral_id}")
async def referral_page(
    request: Request,
    referral_id: ReferralId,
    principal: Anyone,
    done: int = 0,
    written: int = 0,
    attached: int = 0,
) -> Response:
    if not principal.has(Role.CASEWORKER, Role.FOCAL_POINT, Role.AUDITOR):
        if principal.has(Role.COORDINATOR):
            # The secretariat sees no case, only what crossed the network about it (the
            # address its notifications link to).
            query = urlencode({"log": "network", "object": f"referral:{referral_id}"})
            return RedirectResponse(f"/audit?{query}", status_code=303)
        raise Forbidden("this needs one of the roles: auditor, caseworker, focal_point")
    notice = conversation.SENT if written else documents.SENT if attached else None
    return await _referral(request, principal, referral_id, done=bool(done), notice=notice)


def in_order(allowed: list[str]) -> tuple[list[str], list[str]]:
    """The actions a page offers, as (steps forward, steps that end or undo), each in the
    order a person most likely wants them."""
    forward = [a for a in FORWARD if a in allowed]
    ending = [a for a in ENDING if a in allowed]
    return forward, ending


def done_notice(status: Any, lang: str) -> str:
    """What the page says once an action went through, true to the status it shows."""
    gettext = i18n.translations(lang).gettext
    if status == "sent":
        received = labels.word(labels.STATUS, "received", lang)
        return gettext(SENT_NOT_YET_RECEIVED) % {"received": received}
    return gettext(ACTION_DONE)


async def _referral(
    request: Request,
    principal: Principal,
    referral_id: str,
    *,
    payload: dict[str, Any] | None = None,
    error: ApiRefused | None = None,
    failed_action: str | None = None,
    typed_note: str = "",
    notice: str | None = None,
    done: bool = False,
    errors: dict[str, labels.FieldError] | None = None,
    typed_message: str = "",
    status_code: int = 200,
) -> Response:
    api = NodeApi(request)
    lang = language_of(request)
    lookups = Lookups(api, lang)
    referral = await api.get(f"{REFERRALS}/{referral_id}")
    orgs = await lookups.org_names()
    categories = dict(await lookups.categories())
    row = _row(referral, orgs, categories, lang)
    allowed = [a for a in referral.get("allowed_actions") or [] if a in ACTIONS]
    if (
        referral.get("box") == "outbox"
        and referral.get("consent_state") == "given"
        and referral.get("status") in labels.OPEN_STATUSES
    ):
        allowed.append("revoke-consent")
    if not principal.has(Role.CASEWORKER, Role.FOCAL_POINT):
        allowed = []  # an auditor reads the metadata, and acts on nothing
    reasons = await _reasons(api, lang)
    forward, ending = in_order(allowed)

    def offered(codes: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "code": a,
                "label": labels.word(labels.ACTION, a, lang),
                "reasons": reasons.get(REASON_KIND.get(a, ""), []),
                "needs_reason": a in NEEDS_REASON,
            }
            for a in codes
        ]

    history = [
        {
            "change": await _change(api, h, orgs, lang),
            "at": labels.moment(h.get("at"), lang),
            "at_iso": h.get("at") or "",
            "by": orgs.get(str(h.get("by_org")), h.get("by_org")),
            "reason": _reason_label(reasons, h.get("reason"), lang),
            "link": h.get("link") if h.get("change") in LINKED_CHANGE else None,
        }
        for h in referral.get("history") or []
    ]
    consent = referral.get("consent") or None
    staff = principal.has(Role.CASEWORKER, Role.FOCAL_POINT)
    # The thread is the two organisations' words: read (audited) for case staff only.
    thread = await conversation.thread(api, referral_id, lang, orgs) if staff else None
    files = await documents.files(api, referral_id, lang, orgs) if staff else None
    return render(
        request,
        "referral.html",
        status_code=status_code,
        principal=principal,
        referral=referral,
        row=row,
        history=history,
        actions=offered(forward),
        ending_actions=offered(ending),
        waiting=WAITING_FOR_ANSWER
        if referral.get("box") == "outbox" and referral.get("status") in ("sent", "received")
        else None,
        legal_basis=labels.word(labels.LEGAL_BASIS, referral.get("legal_basis"), lang),
        consent=consent,
        consent_expires=labels.moment(consent.get("expires_at"), lang)
        if isinstance(consent, dict)
        else "",
        payload=await _payload_rows(api, lang, referral.get("category"), payload)
        if payload is not None
        else None,
        notes=[
            {
                "at": labels.moment(n.get("at"), lang),
                "status": labels.word(labels.STATUS, n.get("status"), lang),
                "by": orgs.get(str(n.get("by_org")), n.get("by_org")),
                "text": n.get("note") or "",
            }
            for n in (payload or {}).get("notes") or []
            if isinstance(n, dict)
        ],
        can_read_payload=principal.has(Role.CASEWORKER, Role.FOCAL_POINT),
        error=_error_text(error, lang) if error is not None else None,
        failed_action=failed_action,
        typed_note=typed_note,
        notice=notice,
        done_notice=done_notice(referral.get("status"), lang) if done else None,
        errors=errors or {},
        payload_notice=PAYLOAD_SHOWN,
        can_send_again=principal.has(Role.CASEWORKER, Role.FOCAL_POINT)
        and send_again.may_send_again(referral),
        thread=thread,
        files=files,
        typed_message=typed_message,
        conversation_closed=conversation.CLOSED,
    )


async def _change(api: NodeApi, step: dict[str, Any], orgs: dict[str, str], lang: str) -> str:
    """A history step in words; a link to another referral names that referral's recipient."""
    change = step.get("change") or step.get("status")
    linked = step.get("link")
    if change not in LINKED_CHANGE or not linked:
        return labels.word(labels.CHANGE, change, lang)
    try:
        other = await api.get(f"{REFERRALS}/{linked}")
    except (ApiRefused, NotFound):
        other = {}
    org = str(other.get("to_org") or "") if isinstance(other, dict) else ""
    message = LINKED_CHANGE[str(change)]
    return i18n.translations(lang).gettext(message) % {"org": orgs.get(org, org) or "—"}


async def _reasons(api: NodeApi, lang: str) -> dict[str, list[tuple[str, str]]]:
    """Reason codes by kind (decline, close, outcome), each with its label in ``lang``."""
    try:
        found = await api.get(f"{REFERRALS}/reasons")
    except ApiRefused:
        return {}
    kinds: dict[str, list[tuple[str, str]]] = {}
    if isinstance(found, dict):
        for kind, items in found.items():
            if isinstance(items, dict):  # {code: {fr, ar, en}}
                kinds[str(kind)] = [
                    (str(code), labels.localised(text, lang, str(code)))
                    for code, text in items.items()
                ]
            elif isinstance(items, list):
                kinds[str(kind)] = [_option(item, lang) for item in items]
    elif isinstance(found, list):  # [{kind, code, labels}]
        for item in found:
            kinds.setdefault(str(item.get("kind")), []).append(_option(item, lang))
    return kinds


def _option(item: Any, lang: str) -> tuple[str, str]:
    if isinstance(item, str):
        return item, item.replace("_", " ")
    code = str(item.get("code"))
    return code, labels.localised(item.get("labels") or item.get("label"), lang, code)


def _reason_label(reasons: dict[str, list[tuple[str, str]]], code: Any, lang: str) -> str:
    if not code:
        return ""
    for options in reasons.values():
        for known, label in options:
            if known == code:
                return label
    return str(code).replace("_", " ")


async def _payload_rows(
    api: NodeApi, lang: str, category: Any, payload: dict[str, Any]
) -> list[tuple[str, str]]:
    """The person's data as (label, value), labelled by the category's form."""
    values = payload.get("payload", payload)
    if not isinstance(values, dict):
        return []
    specs = {f.name: f for f in await wizard.form_fields(api, lang, str(category))}
    gettext = i18n.translations(lang).gettext
    rows = []
    for name, value in values.items():
        spec = specs.get(name)
        label = spec.label if spec is not None else name.replace("_", " ")
        if isinstance(value, bool):
            shown = gettext(YES) if value else gettext(NO)
        elif spec is not None and spec.choices:
            shown = dict(spec.choices).get(str(value), str(value))
        else:
            shown = "" if value is None else str(value)
        rows.append((label, shown))
    return rows


def _error_text(error: ApiRefused, lang: str) -> labels.FieldError:
    return labels.field_error(lang, error.detail)


@router.post("/referrals/{referral_id}/act")
async def act_on_referral(
    request: Request,
    referral_id: ReferralId,
    principal: Staff,
    action: Annotated[str, Form(pattern=r"^[a-z-]{1,20}$")],
    reason: Annotated[str, Form(max_length=60)] = "",
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
) -> Response:
    """One action on a referral; on refusal the page again, saying why and keeping the note."""
    if action not in ACTIONS:
        return await _referral(request, principal, referral_id, status_code=400)
    if action in NEEDS_REASON and not reason:
        gettext = i18n.translations(language_of(request)).gettext
        return await _referral(
            request,
            principal,
            referral_id,
            errors={"reason": labels.FieldError(gettext(CHOOSE_REASON))},
            failed_action=action,
            typed_note=note,
            status_code=422,
        )
    api = NodeApi(request)
    body = {k: v for k, v in {"reason": reason, "note": note.strip()}.items() if v}
    try:
        await api.post(f"{REFERRALS}/{referral_id}/{action}", json=body)
    except ApiRefused as refused:
        return await _referral(
            request,
            principal,
            referral_id,
            error=refused,
            failed_action=action,
            typed_note=note,
            status_code=refused.status if 400 <= refused.status < 500 else 400,
        )
    return RedirectResponse(f"/referrals/{referral_id}?done=1", status_code=303)


@router.post("/referrals/{referral_id}/personal-data")
async def show_personal_data(
    request: Request, referral_id: ReferralId, principal: Staff
) -> Response:
    """The person's data, read (and audited) only on this explicit request; never cached."""
    payload = await NodeApi(request).get(f"{REFERRALS}/{referral_id}/payload")
    return await _referral(
        request, principal, referral_id, payload=payload if isinstance(payload, dict) else {}
    )


@router.post("/referrals/{referral_id}/messages")
async def write_message(
    request: Request,
    referral_id: ReferralId,
    principal: Staff,
    text: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    """A message to the other organisation; on refusal the page again, saying why and keeping
    what was typed."""
    gettext = i18n.translations(language_of(request)).gettext
    if not text.strip():
        return await _referral(
            request,
            principal,
            referral_id,
            errors={"text": labels.FieldError(gettext(conversation.EMPTY))},
            typed_message=text,
            status_code=422,
        )
    try:
        await NodeApi(request).post(f"{REFERRALS}/{referral_id}/messages", json={"text": text})
    except ApiRefused as refused:
        return await _referral(
            request,
            principal,
            referral_id,
            errors={"text": _error_text(refused, language_of(request))},
            typed_message=text,
            status_code=refused.status if 400 <= refused.status < 500 else 400,
        )
    return RedirectResponse(f"/referrals/{referral_id}?written=1#conversation", status_code=303)


@router.post("/referrals/{referral_id}/attachments")
async def attach_file(request: Request, referral_id: ReferralId, principal: Staff) -> Response:
    """A file for the other organisation (the form's one part, read in memory and passed to
    the API as it is); on refusal the page again, saying why."""
    lang = language_of(request)
    gettext = i18n.translations(lang).gettext
    upload = await documents.uploaded(request)
    content = await upload.read() if upload is not None else b""
    if upload is None or not upload.filename:
        return await _referral(
            request,
            principal,
            referral_id,
            errors={"file": labels.FieldError(gettext(documents.NO_FILE))},
            status_code=422,
        )
    name = quote(upload.filename, safe="")
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{name}"}
    if upload.content_type:
        headers["Content-Type"] = upload.content_type
    try:
        await NodeApi(request).post(
            f"{REFERRALS}/{referral_id}/attachments", content=content, headers=headers
        )
    except ApiRefused as refused:
        max_mb = settings_of(request).attachment_max_mb
        return await _referral(
            request,
            principal,
            referral_id,
            errors={"file": documents.refusal(lang, refused.detail, max_mb)},
            status_code=refused.status if 400 <= refused.status < 500 else 400,
        )
    return RedirectResponse(f"/referrals/{referral_id}?attached=1#documents", status_code=303)
