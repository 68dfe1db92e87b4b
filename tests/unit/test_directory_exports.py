"""Directory exports: the HSDS 3.0 view other directories import, and the HXL-tagged 3W table
the secretariat opens in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from deploy.demo_network import HUB, MEMBERS
from deploy.demo_network import record as demo_record
from services.directory import export_api, reference
from services.directory.exports import hsds, threew
from services.directory.reference import (
    Category,
    City,
    Language,
    Population,
    ReferenceData,
    Region,
    Sector,
)
from shared.auth import guarded_routes
from shared.contracts.directory import (
    FocalPoint,
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
    ServiceOffer,
)

# The tag syntax of HXL 1.1: a hashtag, then attributes, each lower-case, spaces optional.
HXL_TAG = re.compile(r"^#[a-z][a-z0-9_]*( *\+[a-z][a-z0-9_]*)*$")
# Required by the HSDS 3.0 schemas (schema/*.json, "required"; "tabular_required" for
# a service's organization_id, which a nested service may leave out but we always give).
ORGANIZATION_REQUIRED = {"id", "name", "description"}
SERVICE_REQUIRED = {"id", "name", "status", "organization_id"}
SERVICE_STATUSES = {"active", "inactive", "defunct", "temporarily closed"}


def labels(fr: str, ar: str, en: str) -> MappingProxyType[str, str]:
    return MappingProxyType({"fr": fr, "ar": ar, "en": en})


# A small reference list of our own, so that these tests do not move with the shipped data.
REF = ReferenceData(
    sectors={"protection": Sector("protection", labels("Protection", "الحماية", "Protection"))},
    categories={
        "legal_aid": Category(
            "legal_aid",
            labels("Aide juridique", "المساعدة القانونية", "Legal aid"),
            labels("Conseil", "استشارة", "Advice"),
            "protection",
        )
    },
    regions={
        "oriental": Region("oriental", "MA-02", labels("L'Oriental", "الشرق", "Oriental")),
        "rabat_sale_kenitra": Region(
            "rabat_sale_kenitra", "MA-04", labels("Rabat-Salé-Kénitra", "الرباط", "Rabat")
        ),
    },
    cities={
        "oujda": City("oujda", "oriental", labels("Oujda", "وجدة", "Oujda")),
        "rabat": City("rabat", "rabat_sale_kenitra", labels("Rabat", "الرباط", "Rabat")),
    },
    languages={
        "fra": Language("fra", labels("Français", "الفرنسية", "French")),
        "ary": Language("ary", labels("Darija", "الدارجة", "Darija")),
    },
    aliases={},
    populations={"women": Population("women", labels("Femmes", "النساء", "Women"))},
)


def offer(service_id: str = "permanence", **fields: Any) -> ServiceOffer:
    return ServiceOffer.model_validate(
        {"service_id": service_id, "category": "legal_aid", **fields}
    )


def organisation(
    org_id: str = "sanad",
    *services: ServiceOffer,
    status: MembershipStatus = MembershipStatus.ACTIVE,
    name: LocalisedText | None = None,
    version: int = 1,
) -> OrganisationPublished:
    return OrganisationPublished(
        org_id=org_id,
        version=version,
        name=name or LocalisedText(fr="Sanad", ar="سند", en="Sanad"),
        kind=OrganisationKind.NGO,
        status=status,
        city="rabat",
        website="https://sanad.example.org",
        focal_points=[
            FocalPoint(
                name="Khadija Benali", role="Coordinatrice", email="k.benali@sanad.example.org"
            )
        ],
        services=list(services) or [offer(cities=["rabat"])],
    )


def hsds_json(records: list[OrganisationPublished]) -> list[dict[str, Any]]:
    """The organisations as the HTTP API writes them (aliases, no nulls)."""
    return [
        organization.model_dump(mode="json", exclude_none=True)
        for organization in hsds.hsds_organizations(records, REF)
    ]


def ids_in(value: Any) -> Iterator[str]:
    """Every ``id`` anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id":
                yield item
            yield from ids_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from ids_in(item)


def three_w(records: list[OrganisationPublished]) -> list[list[str]]:
    """The 3W file as text, read back as a spreadsheet would."""
    text = "".join(threew.csv_lines(threew.three_w_rows(records, REF)))
    return list(csv.reader(io.StringIO(text, newline="")))


class TestHsdsRequiredFields:
    def test_an_organization_has_every_field_hsds_requires(self) -> None:
        (organization,) = hsds_json([organisation()])
        assert organization.keys() >= ORGANIZATION_REQUIRED
        assert all(
            isinstance(organization[key], str) and organization[key]
            for key in ORGANIZATION_REQUIRED
        )
        assert organization["description"] == "ONG à Rabat. Services : Aide juridique."

    def test_a_service_has_every_field_hsds_requires(self) -> None:
        service_offer = offer(languages=["fra", "ary"], regions=["oriental"], hours="9h-17h")
        (organization,) = hsds_json([organisation("sanad", service_offer)])
        (service,) = organization["services"]
        assert service.keys() >= SERVICE_REQUIRED
        assert service["status"] in SERVICE_STATUSES
        assert service["organization_id"] == organization["id"]
        for nested in ("languages", "service_areas", "schedules"):
            assert service[nested], nested
            assert all(item["id"] for item in service[nested]), nested

    def test_every_id_is_a_uuid_and_none_repeats(self) -> None:
        both = offer("permanence", languages=["fra"], cities=["rabat", "oujda"], hours="lundi")
        records = [
            organisation("sanad", both, offer("ecoute", cities=["rabat"])),
            organisation("amal", both),
        ]
        ids = list(ids_in(hsds_json(records)))
        assert len(ids) == len(set(ids)) == 14
        assert all(uuid.UUID(value).version == 5 for value in ids)


class TestHsdsIds:
    def test_ids_are_the_same_in_two_exports(self) -> None:
        first = hsds_json([organisation(version=1)])
        # A later version, rebuilt from scratch, as another node would hold it.
        second = hsds_json([organisation(version=2)])
        assert list(ids_in(first)) == list(ids_in(second))

    def test_an_organizations_id_can_be_recomputed_from_its_code(self) -> None:
        (organization,) = hsds_json([organisation()])
        expected = uuid.uuid5(
            uuid.uuid5(uuid.NAMESPACE_URL, "urn:relais:hsds"), "organization/sanad"
        )
        assert organization["id"] == str(expected)


class TestHsdsContent:
    def test_only_active_organisations_are_exported(self) -> None:
        records = [
            organisation("sanad"),
            organisation("amal", status=MembershipStatus.SUSPENDED),
            organisation("jusoor", status=MembershipStatus.APPLICANT),
            organisation("nour", status=MembershipStatus.LEFT),
        ]
        assert [o["x-relais"]["org_id"] for o in hsds_json(records)] == ["sanad"]
        assert [s.relais.org_id for s in hsds.hsds_services(records, REF)] == ["sanad"]
        assert hsds.find_organization(records, "amal") is None

    def test_the_french_name_is_the_name_and_every_language_is_kept(self) -> None:
        (organization,) = hsds_json([organisation()])
        assert organization["name"] == "Sanad"
        assert organization["alternate_name"] == "سند"
        assert organization["x-relais"]["names"] == {"fr": "Sanad", "ar": "سند", "en": "Sanad"}

    def test_no_arabic_name_leaves_no_alternate_name(self) -> None:
        (organization,) = hsds_json([organisation(name=LocalisedText(fr="Sanad"))])
        assert "alternate_name" not in organization

    def test_focal_points_are_not_exported(self) -> None:
        text = json.dumps(hsds_json([organisation()]), ensure_ascii=False)
        assert "Benali" not in text
        assert "k.benali@" not in text
        assert "Coordinatrice" not in text

    def test_eligibility_and_fees_are_described_in_french(self) -> None:
        rules = {"min_age": 12, "max_age": 17, "sex": "female", "populations": ["women"]}
        (organization,) = hsds_json([organisation("sanad", offer(eligibility=rules, cost="fee"))])
        (service,) = organization["services"]
        assert service["minimum_age"] == 12
        assert service["maximum_age"] == 17
        assert service["eligibility_description"] == (
            "De 12 à 17 ans. Réservé aux femmes et aux filles. Publics : Femmes."
        )
        assert service["fees_description"] == "Payant."

    def test_a_service_without_room_is_active_with_an_alert(self) -> None:
        (organization,) = hsds_json([organisation("sanad", offer(capacity="closed"))])
        (service,) = organization["services"]
        assert service["status"] == "active"
        assert service["alert"].startswith("Complet")
        assert service["x-relais"]["capacity"] == "closed"

    def test_a_service_that_names_no_place_is_offered_in_its_organisations_city(self) -> None:
        (organization,) = hsds_json([organisation("sanad", offer())])
        (area,) = organization["services"][0]["service_areas"]
        assert area["name"] == "Rabat"
        assert area["x-relais"] == {
            "level": "city",
            "code": "rabat",
            "region": "rabat_sale_kenitra",
        }

    def test_a_region_area_carries_its_iso_code(self) -> None:
        (organization,) = hsds_json([organisation("sanad", offer(regions=["oriental"]))])
        (area,) = organization["services"][0]["service_areas"]
        assert area["x-relais"] == {"level": "region", "code": "oriental", "iso": "MA-02"}

    def test_a_code_the_reference_data_no_longer_lists_is_shown_as_is(self) -> None:
        stale = offer(category="old_category", languages=["xyz"], cities=["atlantis"])
        (organization,) = hsds_json([organisation("sanad", stale)])
        (service,) = organization["services"]
        assert service["name"] == "old_category"
        assert service["languages"][0]["name"] == "xyz"
        assert service["service_areas"][0]["name"] == "atlantis"

    def test_a_service_found_by_its_id_comes_with_its_organisation(self) -> None:
        records = [organisation()]
        (wanted,) = hsds.hsds_services(records, REF)
        found = hsds.find_service(records, wanted.id)
        assert found is not None
        service = hsds.hsds_service(*found, REF, with_organization=True)
        assert service.organization is not None
        assert service.organization.name == "Sanad"
        assert service.organization.services is None

    def test_an_organisation_is_found_by_its_code_or_its_hsds_id(self) -> None:
        records = [organisation()]
        assert hsds.find_organization(records, "sanad") is records[0]
        assert hsds.find_organization(records, hsds.organization_id("sanad")) is records[0]


class TestHsdsPages:
    services = hsds.hsds_services(
        [organisation("sanad", offer("accueil"), offer("ecoute"), offer("soins"))], REF
    )

    def test_a_page_says_where_it_is_in_the_list(self) -> None:
        page = hsds.page_of(hsds.ServicePage, self.services, 2, 2)
        assert (page.total_items, page.total_pages, page.page_number, page.size) == (3, 2, 2, 1)
        assert (page.first_page, page.last_page, page.empty) == (False, True, False)
        assert [service.relais.service_id for service in page.contents] == ["soins"]

    def test_a_page_past_the_end_is_empty(self) -> None:
        page = hsds.page_of(hsds.ServicePage, self.services, 3, 2)
        assert page.empty
        assert page.contents == []

    def test_an_empty_list_is_one_empty_page(self) -> None:
        page = hsds.page_of(hsds.OrganizationPage, [], 1, 50)
        assert (page.total_items, page.empty, page.first_page, page.last_page) == (
            0,
            True,
            True,
            True,
        )


class TestThreeW:
    def test_the_first_row_is_french_headers_and_the_second_hxl_hashtags(self) -> None:
        headers, tags, *_ = three_w([organisation()])
        assert headers[:3] == ["Organisation", "Code organisation", "Type d'organisation"]
        assert not any(header.startswith("#") for header in headers)
        assert tags == [tag for _, tag in threew.THREE_W_COLUMNS]

    def test_every_hashtag_is_valid_hxl(self) -> None:
        _, tags, *_ = three_w([organisation()])
        invalid = [tag for tag in tags if not HXL_TAG.fullmatch(tag)]
        assert invalid == []
        assert len(set(tags)) == len(tags)

    def test_one_row_per_organisation_service_and_place(self) -> None:
        records = [
            organisation("sanad", offer("permanence", cities=["rabat", "oujda"]), offer("asile")),
            organisation("amal", offer("ecoute", regions=["oriental"])),
        ]
        rows = three_w(records)[2:]
        assert [(row[1], row[12] or row[10]) for row in rows] == [
            ("sanad", "rabat"),
            ("sanad", "oujda"),
            ("sanad", "rabat"),  # named no place: its organisation's city
            ("amal", "MA-02"),
        ]

    def test_a_national_service_yields_a_national_row(self) -> None:
        rows = three_w([organisation("sanad", offer(national=True))])[2:]
        column = {tag: i for i, (_, tag) in enumerate(threew.THREE_W_COLUMNS)}
        (row,) = rows
        assert row[column["#country +code"]] == "MAR"
        assert row[column["#meta +coverage"]] == "Nationale"
        assert row[column["#adm1 +name"]] == row[column["#loc +name"]] == ""

    def test_a_city_row_names_its_region_and_iso_code(self) -> None:
        (row,) = three_w([organisation("sanad", offer(cities=["oujda"], capacity="waitlist"))])[2:]
        values = dict(zip((tag for _, tag in threew.THREE_W_COLUMNS), row, strict=True))
        assert values["#loc +name"] == "Oujda"
        assert values["#adm1 +name"] == "L'Oriental"
        assert values["#adm1 +code"] == "MA-02"
        assert values["#sector +name"] == "Protection"
        assert values["#subsector +name"] == "Aide juridique"
        assert values["#status +capacity"] == "Liste d'attente"
        assert values["#status +referrals"] == "oui"

    def test_only_active_organisations_appear(self) -> None:
        records = [organisation("sanad"), organisation("amal", status=MembershipStatus.SUSPENDED)]
        assert {row[1] for row in three_w(records)[2:]} == {"sanad"}

    def test_commas_quotes_and_arabic_survive_a_round_trip(self) -> None:
        name = LocalisedText(fr='Association "Al Amal", Oujda\nSection femmes')
        written = organisation("amal", offer(languages=["fra", "ary"]), name=name)
        (row,) = three_w([written])[2:]
        assert row[0] == 'Association "Al Amal", Oujda\nSection femmes'
        assert row[14] == "Français, Darija"
        arabic = organisation("amal", name=LocalisedText(fr="جمعية الأمل، وجدة"))
        assert three_w([arabic])[2][0] == "جمعية الأمل، وجدة"

    def test_a_cell_that_would_run_as_a_formula_is_made_inert(self) -> None:
        name = LocalisedText(fr='=HYPERLINK("http://evil.example","Sanad")')
        (row,) = three_w([organisation("sanad", name=name)])[2:]
        assert row[0] == "'" + name.fr

    def test_the_file_is_named_after_the_day(self) -> None:
        assert threew.three_w_filename(date(2026, 3, 8)) == "relais-3w-2026-03-08.csv"

    def test_capacity_is_dated_when_the_organisation_said_when(self) -> None:
        said = datetime(2026, 3, 8, 10, 30, tzinfo=UTC)
        (row,) = three_w([organisation("sanad", offer(capacity_set_at=said))])[2:]
        assert "2026-03-08 10:30" in row  # Ramadan: Casablanca is at UTC+0

    def test_its_time_is_the_nodes_named_in_the_header_on_both_sides_of_a_change(self) -> None:
        # Casablanca left UTC+1 for Ramadan at 02:00 UTC on 15 February 2026.
        before = datetime(2026, 2, 14, 23, 30, tzinfo=UTC)  # 00:30 on the 15th, UTC+1
        after = datetime(2026, 2, 15, 23, 30, tzinfo=UTC)  # 23:30 on the 15th, UTC+0
        rows = three_w(
            [
                organisation("sanad", offer(capacity_set_at=before)),
                organisation("amal", offer(capacity_set_at=after)),
            ]
        )
        column = rows[1].index("#date +capacity")
        assert rows[0][column] == "Capacité mise à jour le (heure locale, Africa/Casablanca)"
        assert {row[1]: row[column] for row in rows[2:]} == {
            "sanad": "2026-02-15 00:30",
            "amal": "2026-02-15 23:30",
        }

    def test_another_node_zone_is_the_one_named_and_used(self) -> None:
        said = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
        records = [organisation("sanad", offer(capacity_set_at=said))]
        text = "".join(
            threew.csv_lines(threew.three_w_rows(records, REF, zone=ZoneInfo("Europe/Paris")))
        )
        header, _, row = list(csv.reader(io.StringIO(text, newline="")))
        assert "Capacité mise à jour le (heure locale, Europe/Paris)" in header
        assert "2026-07-01 14:00" in row


def test_the_demo_network_exports_with_the_shipped_reference_data() -> None:
    records = [
        demo_record(org, version=1, node_url="http://node", keys=[]) for org in (HUB, *MEMBERS)
    ]
    ref = reference.reference()
    rows = list(threew.three_w_rows(records, ref))[2:]
    sectors = {row[4] for row in rows}
    assert rows
    assert "" not in sectors  # every category is counted under a known sector
    services = hsds.hsds_services(records, ref)
    assert all(service.name != service.relais.category for service in services)


def test_every_export_route_needs_a_logged_in_caller_of_any_role() -> None:
    app = FastAPI()
    app.include_router(export_api.router, prefix="/api/v1/directory")
    table = {
        (route.method, route.path): [r.roles for r in route.requirements]
        for route in guarded_routes(app.routes)
    }
    assert table == {
        ("GET", f"/api/v1/directory{path}"): [frozenset()]
        for path in (
            "/hsds",
            "/hsds/organizations",
            "/hsds/organizations/{org_id}",
            "/hsds/services",
            "/hsds/services/{service_id}",
            "/exports/3w.csv",
        )
    }
