"""The organisation's record as a form: what the form sends becomes the record the API signs,
with what only the coordinators set carried over, and every mistake said beside its field in
the reader's language; the hub's reasons for a refusal said in words."""

from __future__ import annotations

from typing import Any

from services.dashboard import profile_form
from services.dashboard.profile_form import Choices, Typed, parse, values_of
from shared.contracts.directory import OrganisationPublished

RECORD: dict[str, Any] = {
    "org_id": "amal",
    "version": 4,
    "name": {"fr": "Association Amal", "ar": "جمعية أمل", "en": ""},
    "kind": "ngo",
    "status": "active",
    "status_reason": "",
    "city": "oujda",
    "node_url": "https://amal.example",
    "website": "https://amal.example.org",
    "cities": ["oujda"],
    "regions": ["oriental"],
    "focal_points": [
        {"name": "Samira", "role": "Coordinatrice", "email": "s@amal.ma", "phone": ""}
    ],
    "services": [
        {
            "service_id": "ecoute_psychosociale",
            "category": "psychosocial",
            "description": {"fr": "Écoute", "ar": "", "en": ""},
            "eligibility": {"min_age": None, "max_age": None, "sex": "any", "populations": []},
            "languages": ["fr", "ar"],
            "cities": ["oujda"],
            "regions": [],
            "national": False,
            "hours": "Lun-Ven 9h-17h",
            "cost": "free",
            "takes_referrals": True,
            "capacity": "waitlist",
            "capacity_set_at": "2026-11-30T10:00:00Z",
        }
    ],
    "keys": [],
}
CHOICES = Choices(
    cities={"oujda", "nador", "rabat"},
    regions={"oriental", "rabat_sale_kenitra"},
    languages={"fr", "ar", "en", "tzm"},
    categories={"psychosocial", "legal_aid"},
    populations={"minors", "women"},
)


def form(**changes: list[str]) -> Typed:
    values = values_of(RECORD)
    values.update(changes)
    return Typed(values)


def test_an_unchanged_form_asks_for_the_same_record_at_the_next_version() -> None:
    parsed = parse(form(), RECORD, "fr", CHOICES)
    assert parsed.errors == {}
    assert parsed.record == {**RECORD, "version": 5}
    OrganisationPublished.model_validate(parsed.record)  # what the API will accept


def test_new_hours_and_a_language_reach_the_record_and_the_capacity_is_kept() -> None:
    parsed = parse(
        form(
            **{
                "services.0.hours": ["Lun-Sam 8h-18h"],
                "services.0.languages": ["fr", "ar", "tzm"],
                "name.en": ["Amal Association"],
            }
        ),
        RECORD,
        "fr",
        CHOICES,
    )
    assert parsed.errors == {}
    offer = parsed.record["services"][0]
    assert offer["hours"] == "Lun-Sam 8h-18h"
    assert offer["languages"] == ["fr", "ar", "tzm"]
    assert offer["capacity"] == "waitlist"
    assert offer["capacity_set_at"] == "2026-11-30T10:00:00Z"
    assert parsed.record["name"] == {
        "fr": "Association Amal",
        "ar": "جمعية أمل",
        "en": "Amal Association",
    }


def test_what_the_coordinators_set_is_carried_over_whatever_the_form_says() -> None:
    parsed = parse(
        form(status=["suspended"], kind=["secretariat"], node_url=["https://evil"]),
        RECORD,
        "fr",
        CHOICES,
    )
    for name in ("status", "kind", "node_url", "keys", "status_reason", "org_id"):
        assert parsed.record[name] == RECORD[name]


def test_the_version_is_the_one_the_form_was_opened_on() -> None:
    newer = {**RECORD, "version": 6}
    assert parse(form(), newer, "fr", CHOICES).record["version"] == 5  # so the hub says stale


def test_each_mistake_is_said_beside_its_field_in_the_readers_language() -> None:
    parsed = parse(
        form(
            **{
                "name.fr": [""],
                "website": ["javascript:alert(1)"],
                "focal_points.0.email": ["pas-une-adresse"],
                "focal_points.1.role": ["Juriste"],
                "services.0.eligibility.min_age": ["18"],
                "services.0.eligibility.max_age": ["12"],
                "services.0.languages": ["fr", "klingon"],
                "services.0.hours": ["x" * 301],
            }
        ),
        RECORD,
        "fr",
        CHOICES,
    )
    assert set(parsed.errors) == {
        "name.fr",
        "website",
        "focal_points.0.email",
        "focal_points.1.name",
        "services.0.eligibility.min_age",
        "services.0.languages",
        "services.0.hours",
    }
    assert parsed.errors["services.0.hours"].message == "Au plus 300 caractères."
    arabic = parse(form(**{"name.fr": [""]}), RECORD, "ar", CHOICES)
    assert arabic.errors["name.fr"].message != parsed.errors["name.fr"].message
    assert any("\u0600" <= ch <= "\u06ff" for ch in arabic.errors["name.fr"].message)


def test_a_new_service_is_added_from_the_blank_row_and_one_is_removed() -> None:
    added = parse(
        form(**{"services.1.category": ["legal_aid"], "services.1.hours": ["Mardi"]}),
        RECORD,
        "fr",
        CHOICES,
    )
    assert [s["service_id"] for s in added.record["services"]] == [
        "ecoute_psychosociale",
        "legal_aid",
    ]
    new = OrganisationPublished.model_validate(added.record).services[1]
    assert (new.category, new.hours, new.capacity) == ("legal_aid", "Mardi", "open")

    removed = parse(form(**{"services.0.remove": ["on"]}), RECORD, "fr", CHOICES)
    assert removed.record["services"] == []


def test_an_emptied_focal_point_row_takes_the_person_off() -> None:
    emptied = {f"focal_points.0.{part}": [""] for part in ("name", "role", "email", "phone")}
    assert parse(form(**emptied), RECORD, "fr", CHOICES).record["focal_points"] == []


def test_the_apis_error_goes_beside_the_row_the_person_filled_in() -> None:
    parsed = parse(
        form(**{"services.0.remove": ["on"], "services.1.category": ["legal_aid"]}),
        RECORD,
        "fr",
        CHOICES,
    )
    # The record's first service is the form's second row; a code list is one field.
    errors = profile_form.api_errors(
        [("services.0.languages.2", "unknown language 'xx'; did you mean 'ar'?")],
        "bad",
        parsed,
        "fr",
    )
    assert list(errors) == ["services.1.languages"]
    assert errors["services.1.languages"].technical is None


def test_the_hubs_refusal_is_said_in_words_naming_the_part_of_the_record() -> None:
    part, why = profile_form.refusal(
        "organisation amal is at version 5; send version 6, not 5", "version", "fr"
    )
    assert part == ""  # a stale version is about the whole record: no part named
    assert "changé" in why.message and why.technical is None
    part, why = profile_form.refusal("kind is set by the network's coordinators", "kind", "en")
    assert part == "Kind of organisation"
    assert why.message == "Only the network's coordinators change this part of the record."
    part, why = profile_form.refusal("something new", "services.0.hours", "ar")
    assert part and why.technical == "something new"


def test_a_refusal_about_what_the_form_does_not_hold_is_said_above_the_form() -> None:
    parsed = parse(form(), RECORD, "fr", CHOICES)
    errors = profile_form.api_errors(
        [("kind", "kind is set by the network's coordinators")], "", parsed, "fr"
    )
    assert list(errors) == ["form"]
    assert errors["form"].message.startswith("Seuls les coordinateurs du réseau")
