"""Minimum data: a payload carries its category's fields and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.referrals import forms
from shared.errors import Invalid

TAXONOMY = json.loads(
    (forms.DATA.parents[1] / "directory" / "reference" / "taxonomy.json").read_text()
)


def check(category: str, **payload: Any) -> dict[str, Any]:
    return forms.form_of(category).check(payload)


def refused(category: str, **payload: Any) -> Invalid:
    with pytest.raises(Invalid) as caught:
        check(category, **payload)
    return caught.value


def test_every_category_of_the_taxonomy_has_a_form_with_labels_in_three_languages() -> None:
    categories = {c["code"] for c in TAXONOMY["categories"]}
    assert set(forms.forms()) == categories
    for form in forms.forms().values():
        assert any(f.required for f in form.fields)
        for spec in form.fields:
            assert spec.label.fr and spec.label.ar and spec.label.en


def test_a_field_outside_the_allow_list_is_refused_by_name() -> None:
    error = refused("food_basic_needs", given_name="A", household_size=3, religion="x")
    assert error.field == "payload.religion"
    assert "not collected" in error.detail


def test_a_missing_required_field_is_named() -> None:
    assert refused("legal_aid", given_name="A", need_summary="x").field == "payload.family_name"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"age": "ten"}, "payload.age"),
        ({"age": 130}, "payload.age"),
        ({"age": True}, "payload.age"),
        ({"unaccompanied": "yes"}, "payload.unaccompanied"),
        ({"sex": "unknown"}, "payload.sex"),
        ({"given_name": "A\nB"}, "payload.given_name"),
        ({"given_name": "x" * 81}, "payload.given_name"),
    ],
)
def test_values_are_checked_against_their_type(payload: dict[str, Any], field: str) -> None:
    base = {"given_name": "A", "age": 10, "unaccompanied": True, "need_summary": "x"}
    assert refused("child_protection", **(base | payload)).field == field


def test_dates_are_iso_dates() -> None:
    base = {"given_name": "A", "family_name": "B", "need_summary": "x"}
    assert check("legal_aid", **base, hearing_date="2026-12-01")["hearing_date"] == "2026-12-01"
    assert refused("legal_aid", **base, hearing_date="01/12/2026").field == "payload.hearing_date"


def test_empty_optional_fields_are_dropped_not_stored() -> None:
    assert check("food_basic_needs", given_name="A", household_size=2, phone="") == {
        "given_name": "A",
        "household_size": 2,
    }


def test_reason_codes_are_checked_per_kind() -> None:
    forms.check_reason("decline", "no_capacity")
    with pytest.raises(Invalid) as caught:
        forms.check_reason("decline", "service_provided")
    assert caught.value.field == "reason"


def test_an_unknown_category_has_no_form() -> None:
    with pytest.raises(Invalid) as caught:
        forms.form_of("astrology")
    assert caught.value.field == "category"
