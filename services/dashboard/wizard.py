"""The referral wizard: what the person needs, then the organisations the directory suggests
(with its reasons), then the fields that category allows and only those, then the legal basis
and consent, then a review before sending.

No session state: each step's form carries what the earlier steps gathered in hidden fields,
so a phone that loses its connection loses nothing, and the Back button works. One
``Idempotency-Key`` is drawn at the first step, so sending twice (a double tap, a retry after a
timeout) makes one referral.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from services.dashboard import labels
from services.dashboard.labels import FieldError
from services.dashboard.lookups import Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared import i18n
from shared.auth import Principal, Role, require
from shared.contracts.referrals import is_form_date
from shared.errors import NotFound
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Staff = Annotated[Principal, Depends(require(Role.CASEWORKER, Role.FOCAL_POINT))]
REFERRALS = "/api/v1/referrals"
STEPS = ("need", "organisation", "details", "basis", "review")
STEP_TITLES = {
    "need": N_("What the person needs"),
    "organisation": N_("Which organisation"),
    "details": N_("About the person"),
    "basis": N_("Legal basis and consent"),
    "review": N_("Check and send"),
}
MULTI = ("languages", "populations")
SINGLE = (
    "category",
    "urgency",
    "city",
    "age",
    "sex",
    "to_org",
    "legal_basis",
    "consent_given",
    "consent_expires_at",
    "key",
    "follows",  # sending again: the earlier referral (see send_again.py)
)
CHOOSE_CATEGORY = N_("Choose the service the person needs.")
CHOOSE_ORGANISATION = N_("Choose the organisation to send the referral to.")
CHOOSE_BASIS = N_("Choose the legal basis for sharing the person's data.")
CONFIRM_CONSENT = N_("Confirm that the person agreed, or choose another legal basis.")
NO_SUGGESTION = N_(
    "No member organisation offers this service for this person now. Change the place or"
    " the service, or ask the secretariat."
)
NOT_SENT = N_("The referral was not sent. Correct what is marked and send again.")


@dataclass
class PayloadField:
    """One field a category's form allows."""

    name: str
    type: str
    required: bool
    label: str
    max_length: int | None = None
    choices: list[tuple[str, str]] = field(default_factory=list)
    minimum: int | None = None
    maximum: int | None = None


@dataclass
class Draft:
    """What the wizard has gathered so far."""

    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    payload: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, form: FormData) -> Draft:
        draft = cls()
        for name in SINGLE:
            value = form.get(name)
            if isinstance(value, str):
                draft.values[name] = value.strip() if name != "key" else value
        for name in MULTI:
            draft.lists[name] = [v for v in form.getlist(name) if isinstance(v, str) and v]
        for name, value in form.multi_items():
            if name.startswith("payload.") and isinstance(value, str):
                draft.payload[name.removeprefix("payload.")] = value
        return draft

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def hidden(self, shown: set[str]) -> list[tuple[str, str]]:
        """(name, value) of everything not on the current step's form, to carry it along."""
        pairs = [(n, v) for n, v in self.values.items() if n not in shown and v]
        pairs += [(n, v) for n in MULTI if n not in shown for v in self.lists.get(n, [])]
        if "payload" not in shown:
            pairs += [(f"payload.{n}", v) for n, v in self.payload.items() if v]
        return pairs


@router.get("/referrals/new")
async def wizard_start(request: Request, principal: Staff) -> Response:
    draft = Draft(values={"urgency": "routine", "key": str(uuid.uuid4())})
    return await _step(request, principal, "need", draft, {})


@router.post("/referrals/new")
async def wizard_step(request: Request, principal: Staff) -> Response:
    form = await request.form()
    draft = Draft.of(form)
    draft.values.setdefault("key", str(uuid.uuid4()))
    step = str(form.get("step") or "need")
    if step not in STEPS:
        step = "need"
    go = str(form.get("go") or "next")
    if go == "back":
        return await _step(request, principal, STEPS[max(STEPS.index(step) - 1, 0)], draft, {})
    lang = language_of(request)
    api = NodeApi(request)
    fields = await form_fields(api, lang, draft.get("category")) if draft.get("category") else []
    errors = _check(step, draft, fields, lang)
    if errors:
        return await _step(request, principal, step, draft, errors, status_code=422)
    if step != "review" or go != "send":
        return await _step(request, principal, STEPS[STEPS.index(step) + 1], draft, {})
    try:
        sent = await api.post(
            REFERRALS,
            json=await _body(draft, fields, Lookups(api, lang)),
            headers={"Idempotency-Key": draft.get("key")},
        )
    except ApiRefused as refused:
        errors = {name: labels.field_error(lang, detail) for name, detail in refused.errors}
        if not errors:
            errors = {"form": labels.field_error(lang, refused.detail)}
        back_to = _step_of(next(iter(errors)))
        errors["notice"] = FieldError(i18n.translations(lang).gettext(NOT_SENT))
        return await _step(request, principal, back_to, draft, errors, status_code=422)
    return RedirectResponse(f"/referrals/{sent['referral_id']}?done=1", status_code=303)


def _step_of(api_field: str) -> str:
    """The step whose form holds the field an API error names."""
    if api_field.startswith("payload"):
        return "details"
    if api_field in ("to_org",):
        return "organisation"
    if api_field == "follows":
        return "review"
    if api_field.startswith(("legal_basis", "consent")):
        return "basis"
    if api_field == "form":
        return "review"
    return "need"


def _check(step: str, draft: Draft, fields: list[PayloadField], lang: str) -> dict[str, FieldError]:
    """What the reader must correct on ``step`` before going on (the API checks again)."""
    gettext = i18n.translations(lang).gettext
    errors: dict[str, FieldError] = {}
    if step == "need":
        if not draft.get("category"):
            errors["category"] = FieldError(gettext(CHOOSE_CATEGORY))
        age = draft.get("age")
        if age and (not age.isdigit() or int(age) > 120):
            errors["age"] = FieldError(gettext(labels.NOT_A_NUMBER))
    elif step == "organisation":
        if not draft.get("to_org"):
            errors["to_org"] = FieldError(gettext(CHOOSE_ORGANISATION))
    elif step == "details":
        for spec in fields:
            problem = _field_problem(spec, draft.payload.get(spec.name, "").strip())
            if problem is not None:
                errors[f"payload.{spec.name}"] = FieldError(gettext(problem[0]) % problem[1])
    elif step == "basis":
        basis = draft.get("legal_basis")
        if basis not in labels.LEGAL_BASIS:
            errors["legal_basis"] = FieldError(gettext(CHOOSE_BASIS))
        elif basis == "consent" and draft.get("consent_given") != "yes":
            errors["consent_given"] = FieldError(gettext(CONFIRM_CONSENT))
        expires = draft.get("consent_expires_at")
        if basis == "consent" and expires and not is_form_date(expires):
            errors["consent_expires_at"] = FieldError(gettext(labels.NOT_A_DATE))
    return errors


def _field_problem(spec: PayloadField, value: str) -> tuple[str, dict[str, Any]] | None:
    if not value:
        return (labels.FIELD_REQUIRED, {}) if spec.required and spec.type != "boolean" else None
    if spec.max_length is not None and len(value) > spec.max_length:
        return labels.TOO_LONG, {"count": spec.max_length}
    if spec.type == "date" and not is_form_date(value):
        return labels.NOT_A_DATE, {}
    if spec.type == "integer":
        if not value.lstrip("-").isdigit():
            return labels.NOT_A_NUMBER, {}
        if spec.minimum is not None and int(value) < spec.minimum:
            return labels.TOO_SMALL, {"count": spec.minimum}
        if spec.maximum is not None and int(value) > spec.maximum:
            return labels.TOO_BIG, {"count": spec.maximum}
    if spec.type == "choice" and value not in {code for code, _ in spec.choices}:
        return labels.NOT_A_CHOICE, {}
    return None


async def _body(draft: Draft, fields: list[PayloadField], lookups: Lookups) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for spec in fields:
        value = draft.payload.get(spec.name, "").strip()
        if spec.type == "boolean":
            if value:
                payload[spec.name] = value == "yes"
        elif value:
            payload[spec.name] = int(value) if spec.type == "integer" else value
    body: dict[str, Any] = {
        "to_org": draft.get("to_org"),
        "category": draft.get("category"),
        "urgency": draft.get("urgency") or "routine",
        "legal_basis": draft.get("legal_basis"),
        "payload": payload,
    }
    if draft.get("follows"):
        body["follows"] = draft.get("follows")
    region = (await lookups.region_of_city()).get(draft.get("city"))
    if region:
        body["region"] = region
    if draft.get("legal_basis") == "consent":
        expires = draft.get("consent_expires_at")
        body["consent"] = (
            {"expires_at": labels.last_second(date.fromisoformat(expires)).isoformat()}
            if expires
            else {}
        )
    return body


async def form_fields(api: NodeApi, lang: str, category: str) -> list[PayloadField]:
    """The payload fields ``category``'s form allows, labelled in ``lang``."""
    try:
        found = await api.get(f"{REFERRALS}/categories")
    except (NotFound, ApiRefused):
        return []
    entry: Any = None
    if isinstance(found, dict):
        entry = found.get(category)
        if entry is None and isinstance(found.get("categories"), list):
            found = found["categories"]
    if isinstance(found, list):
        entry = next(
            (
                c
                for c in found
                if isinstance(c, dict) and c.get("code", c.get("category")) == category
            ),
            None,
        )
    if not isinstance(entry, dict):
        return []
    gettext = i18n.translations(lang).gettext
    fields = []
    for spec in entry.get("fields") or []:
        choices = []
        for choice in spec.get("choices") or []:
            if isinstance(choice, dict):
                code = str(choice.get("code"))
                text = labels.localised(choice.get("labels") or choice.get("label"), lang, code)
            else:
                code = str(choice)
                text = gettext(labels.CHOICE[code]) if code in labels.CHOICE else code
            choices.append((code, text))
        fields.append(
            PayloadField(
                name=str(spec["name"]),
                type=str(spec.get("type", "string")),
                required=bool(spec.get("required")),
                label=labels.localised(spec.get("labels") or spec.get("label"), lang, spec["name"]),
                max_length=spec.get("max_length"),
                choices=choices,
                minimum=spec.get("min"),
                maximum=spec.get("max"),
            )
        )
    return fields


async def _suggestions(api: NodeApi, draft: Draft) -> list[dict[str, Any]]:
    """The directory's ranked suggestions for the draft's need, through the referrals API (or,
    on a node without it, the directory's match)."""
    body: dict[str, Any] = {
        "category": draft.get("category"),
        "languages": draft.lists.get("languages", []),
        "populations": draft.lists.get("populations", []),
        "urgency": draft.get("urgency") or "routine",
    }
    if draft.get("age").isdigit():
        body["age"] = int(draft.get("age"))
    for name in ("city", "sex"):
        if draft.get(name):
            body[name] = draft.get(name)
    try:
        found = await api.post(f"{REFERRALS}/suggestions", json=body)
    except NotFound:
        found = await api.post("/api/v1/directory/match", json=body)
    items = found.get("suggestions", []) if isinstance(found, dict) else found
    return [item for item in items or [] if isinstance(item, dict)]


def present_suggestions(
    items: list[dict[str, Any]], names: dict[str, dict[str, str]], lang: str
) -> list[dict[str, Any]]:
    """The directory's suggestions as the pages show them: name, city, service, reasons."""
    shown = []
    for item in items:
        org_id = str(item.get("org_id"))
        service = item.get("service") or {}
        shown.append(
            {
                "org_id": org_id,
                "name": labels.localised(item.get("org_name"), lang, org_id),
                "city": names["city"].get(str(item.get("org_city")), item.get("org_city")),
                "description": labels.said(service.get("description"), lang),  # marked if not lang
                "capacity": service.get("capacity"),
                "capacity_label": labels.word(labels.CAPACITY, service.get("capacity"), lang),
                "reasons": [
                    labels.reason_text(r, lang, lambda kind, code: names[kind].get(code, code))
                    for r in item.get("reasons") or []
                ],
            }
        )
    return shown


async def show_step(request: Request, principal: Principal, step: str, draft: Draft) -> Response:
    """The wizard at ``step`` with what ``draft`` already holds (a referral sent again
    enters it at the person's details)."""
    return await _step(request, principal, step, draft, {})


async def _step(
    request: Request,
    principal: Principal,
    step: str,
    draft: Draft,
    errors: dict[str, FieldError],
    *,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    api = NodeApi(request)
    lookups = Lookups(api, lang)
    names = await lookups.namer()
    context: dict[str, Any] = {}
    shown: set[str] = {"key"}
    category = draft.get("category")
    fields = await form_fields(api, lang, category) if category else []
    if step == "need":
        shown |= {"category", "urgency", "city", "age", "sex", *MULTI}
        context.update(
            categories=await lookups.categories(),
            regions=await lookups.regions(),
            language_options=await lookups.languages(),
            populations=await lookups.populations(),
        )
    elif step == "organisation":
        shown |= {"to_org"}
        suggestions = present_suggestions(await _suggestions(api, draft), names, lang)
        context.update(suggestions=suggestions, no_suggestion=NO_SUGGESTION)
    elif step == "details":
        shown |= {"payload"}
        context.update(fields=fields)
    elif step == "basis":
        shown |= {"legal_basis", "consent_given", "consent_expires_at"}
    else:
        context.update(fields=fields)
    return render(
        request,
        "wizard.html",
        status_code=status_code,
        principal=principal,
        step=step,
        step_number=STEPS.index(step) + 1,
        steps=[(s, STEP_TITLES[s]) for s in STEPS],
        draft=draft,
        hidden=draft.hidden(shown),
        errors=errors,
        names=names,
        urgencies=[(c, labels.word(labels.URGENCY, c, lang)) for c in labels.URGENCY],
        bases=[(c, labels.word(labels.LEGAL_BASIS, c, lang)) for c in labels.LEGAL_BASIS],
        sexes=[(c, labels.word(labels.SEX, c, lang)) for c in ("female", "male")],
        urgency_label=labels.word(labels.URGENCY, draft.get("urgency"), lang),
        basis_label=labels.word(labels.LEGAL_BASIS, draft.get("legal_basis"), lang),
        **context,
    )
