"""The referral commands' published schemas say what the checks accept, no more, no less: a
payload fits its category's schema exactly when it fits the form, and a step's reason fits the
schema exactly when the lifecycle and the reason lists take it."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; a dependency of openapi-spec-validator
import pytest

from services.referrals import domain, forms, request_schemas
from services.referrals.commands import Act, Create
from shared.errors import Invalid

SAMPLE = {"string": "Amina", "text": "a need", "date": "1990-05-01", "integer": 3, "boolean": True}
REFERRAL_ID = "0190a3c4-1b2c-7d3e-8f40-123456789abc"


def sample(spec: forms.FieldSpec) -> Any:
    if spec.type == "choice":
        return (spec.choices or [""])[0]
    if spec.type == "integer":
        return spec.min if spec.min is not None else 1
    return SAMPLE[spec.type]


def form_accepts(form: forms.Form, payload: dict[str, Any]) -> bool:
    try:
        form.check(payload)
    except Invalid:
        return False
    return True


def schema_accepts(schema: dict[str, Any], instance: dict[str, Any]) -> bool:
    return bool(jsonschema.Draft7Validator(schema).is_valid(instance))


@pytest.mark.parametrize("category", list(forms.forms()))
def test_a_categorys_payload_schema_is_its_form(category: str) -> None:
    form = forms.forms()[category]
    schema = request_schemas.payload_schema(form)
    required = {s.name: sample(s) for s in form.fields if s.required}
    full = {s.name: sample(s) for s in form.fields}
    optional = [s.name for s in form.fields if not s.required]
    cases = [
        required,
        full,
        {**required, "not_in_any_form": "x"},
        {**full, **dict.fromkeys(optional[:1], None)},
    ]
    cases += [{k: v for k, v in required.items() if k != name} for name in required]
    cases += [{**required, name: ""} for name in required]
    for payload in cases:
        assert schema_accepts(schema, payload) == form_accepts(form, payload), payload
    assert schema_accepts(schema, full)


def test_a_new_referrals_schema_takes_the_payload_of_its_category_only() -> None:
    schema = Create.model_json_schema()
    shelter, legal = forms.forms()["shelter"], forms.forms()["legal_aid"]
    base = {"token": "t", "to_org": "amal", "urgency": "routine"}
    fits = {s.name: sample(s) for s in shelter.fields}
    assert set(fits) - {s.name for s in legal.fields}, "the two forms differ"
    assert schema_accepts(schema, {**base, "category": "shelter", "payload": fits})
    assert not schema_accepts(schema, {**base, "category": "legal_aid", "payload": fits})
    assert not schema_accepts(schema, {**base, "category": "astrology", "payload": fits})


def lifecycle_accepts(action: domain.Action, reason: str | None) -> bool:
    move = domain.MOVES[action]
    status = next(iter(move.allowed_from))
    try:
        domain.local_move(status, move.side, action, reason)
        forms.check_reason(move.reason, reason)
    except Invalid:
        return False
    return True


@pytest.mark.parametrize("action", list(domain.Action))
def test_a_steps_reason_schema_is_what_the_lifecycle_takes(action: domain.Action) -> None:
    schema = Act.model_json_schema()
    for reason in [None, "not_a_code", *request_schemas.reason_codes()]:
        step = {"token": "t", "referral_id": REFERRAL_ID, "action": action.value}
        if reason is not None:
            step["reason"] = reason
        assert schema_accepts(schema, step) == lifecycle_accepts(action, reason), (action, reason)
