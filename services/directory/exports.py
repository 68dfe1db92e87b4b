"""The directory as other tools read it: an Open Referral HSDS 3.0 view and a 3W table.

Pure: builds plain objects and CSV rows from organisation records and the reference data;
``export_api.py`` serves them. Only ACTIVE organisations are exported (an applicant, a
suspended member or one that left is not part of the network's offer).

HSDS 3.0 (https://github.com/openreferral/specification/tree/3.0/schema)
    ``organization`` requires ``id``, ``name``, ``description``; ``service`` requires ``id``,
    ``name``, ``status`` (and ``organization_id`` in tabular form, always given here);
    ``language``, ``service_area`` and ``schedule`` require ``id``. Every id is a UUIDv5 of
    the record's codes under ``ID_NAMESPACE``, so it is the same in every export, on every
    node, for as long as the organisation and service codes stay.

    Mapping: ``name`` is the French name (the network's working language), ``alternate_name``
    the Arabic one; a service is named after its category (its record has no name of its own)
    and its areas are ``service_areas`` (cities, regions, or all of Morocco).
    ``eligibility_description``, ``fees_description``, ``application_process`` (whether it
    takes referrals through Relais) and ``alert`` (a waitlist, or no room) are French text.

    Extension: HSDS allows properties it does not define, as long as they are documented.
    Relais adds one object, ``x-relais``, to organisations, services and service areas: the
    Relais codes and what HSDS 3.0 has no field for (names and descriptions in French, Arabic
    and English, the kind of organisation, the sector, capacity, eligibility codes). The
    ``x-`` prefix cannot collide with an HSDS name, which are all snake_case.

    Left out on purpose: focal points. They are staff members, and an HSDS file is made to be
    passed on; a referral goes to an organisation's inbox, not to a person, and members reach
    focal points through the directory itself. Also left out: locations and addresses, which
    the directory does not hold (some premises, such as shelters, must not be published).

3W ("who does what where")
    A CSV with a row of French headers, then a row of HXL hashtags (HXL 1.1 core schema),
    then one row per organisation, service and place (``THREE_W_COLUMNS``). A national service
    has a row naming the country and no region ("Couverture" says "Nationale"); a service that
    names no place has its organisation's city, as matching assumes. Region codes are ISO
    3166-2 (MA-01 … MA-12), not OCHA P-codes: a tool expecting P-codes must map them. A cell
    that a spreadsheet would run as a formula is prefixed with "'".
"""

from __future__ import annotations

import csv
import math
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from services.directory.reference import ReferenceData
from shared.contracts.directory import (
    Capacity,
    Cost,
    LocalisedDescription,
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
    ServiceOffer,
    Sex,
)
from shared.settings import DEFAULT_TIMEZONE

HSDS_VERSION = "3.0"
# The 3W's times are people's (a secretariat's spreadsheet): in the node's zone, named in the
# column's header (zoneinfo's conversion, never PostgreSQL's zone data).
NODE_ZONE = ZoneInfo(DEFAULT_TIMEZONE)
LOCAL_TIME = "%Y-%m-%d %H:%M"
ZONED_TAG = "#date +capacity"  # the column of a time: its header names the zone
# Every HSDS id is uuid5(ID_NAMESPACE, "<object>/<codes>"): anyone can recompute it.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:relais:hsds")
EXTENSION = "x-relais"
LANG = "fr"


def stable_id(kind: str, *codes: str) -> str:
    """The HSDS id of an object: codes never contain "/", so the name is unambiguous."""
    return str(uuid.uuid5(ID_NAMESPACE, "/".join((kind, *codes))))


def organization_id(org_id: str) -> str:
    return stable_id("organization", org_id)


def service_id(org_id: str, code: str) -> str:
    return stable_id("service", org_id, code)


# French texts of the exports (the working language of the secretariat's reports).
KIND = {
    OrganisationKind.NGO: "ONG",
    OrganisationKind.MIGRANT_LED: "Association de migrants",
    OrganisationKind.INTERNATIONAL: "Organisation internationale",
    OrganisationKind.PUBLIC_SERVICE: "Service public",
    OrganisationKind.SECRETARIAT: "Secrétariat du réseau",
}
CAPACITY = {
    Capacity.OPEN: "Ouvert",
    Capacity.WAITLIST: "Liste d'attente",
    Capacity.CLOSED: "Complet",
}
ALERT = {
    Capacity.WAITLIST: "Liste d'attente : les nouvelles demandes attendent qu'une place se libère.",
    Capacity.CLOSED: "Complet : pas de nouvelle admission pour le moment.",
}
FEES = {
    Cost.FREE: "Gratuit.",
    Cost.CONTRIBUTION: "Une participation aux frais est demandée.",
    Cost.FEE: "Payant.",
}
SEX = {
    Sex.FEMALE: "Réservé aux femmes et aux filles",
    Sex.MALE: "Réservé aux hommes et aux garçons",
}
COUNTRY = "Maroc"
COUNTRY_ISO3 = "MAR"


# Looking codes up: a record may hold a code the reference data no longer lists (a replica
# applies whatever the hub broadcast); the export then shows the code rather than failing.


def _category_label(ref: ReferenceData, code: str) -> str:
    category = ref.categories.get(code)
    return category.label[LANG] if category else code


def _sector(ref: ReferenceData, category_code: str) -> tuple[str, str]:
    """(code, French label) of the sector a category is counted under; ("", "") if unknown."""
    category = ref.categories.get(category_code)
    sector = ref.sectors.get(category.sector) if category else None
    return (sector.code, sector.label[LANG]) if sector else ("", "")


def _region(ref: ReferenceData, code: str) -> tuple[str, str]:
    """(French label, ISO 3166-2 code) of a region."""
    region = ref.regions.get(code)
    return (region.label[LANG], region.iso) if region else (code, "")


def _city(ref: ReferenceData, code: str) -> tuple[str, str | None]:
    """(French label, region code) of a city."""
    city = ref.cities.get(code)
    return (city.label[LANG], city.region) if city else (code, None)


def _language_label(ref: ReferenceData, code: str) -> str:
    language = ref.languages.get(code)
    return language.label[LANG] if language else code


def _population_label(ref: ReferenceData, code: str) -> str:
    population = ref.populations.get(code)
    return population.label[LANG] if population else code


def active(records: Iterable[OrganisationPublished]) -> list[OrganisationPublished]:
    """The organisations that are part of the network's offer now."""
    return [record for record in records if record.status is MembershipStatus.ACTIVE]


# Places: where a service is offered, in the order the 3W and the service areas list them.


class Level(StrEnum):
    NATIONAL = "national"
    REGION = "region"
    CITY = "city"


@dataclass(frozen=True)
class Place:
    level: Level
    code: str  # a region or city code; the country's ISO code for the national level


def places_of(record: OrganisationPublished, offer: ServiceOffer) -> list[Place]:
    """All of Morocco (if national), then each region, then each city, without repeats.

    A service that names no place is offered in the city its organisation is based in, as
    matching takes it to be.
    """
    places = [Place(Level.NATIONAL, COUNTRY_ISO3)] if offer.national else []
    places += [Place(Level.REGION, code) for code in offer.regions]
    places += [Place(Level.CITY, code) for code in offer.cities]
    return list(dict.fromkeys(places)) or [Place(Level.CITY, record.city)]


# HSDS 3.0 objects. Optional fields left as None are dropped from the JSON (exclude_none).


class _Hsds(BaseModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True, frozen=True)


class HsdsLanguage(_Hsds):
    id: str
    name: str = Field(description="the language's French name")
    code: str = Field(description="ISO 639-3")


class AreaExtension(_Hsds):
    level: Level
    code: str = Field(description="Relais city or region code; MAR for all of Morocco")
    iso: str | None = Field(default=None, description="ISO 3166-2 code of a region")
    region: str | None = Field(default=None, description="Relais code of a city's region")


class HsdsServiceArea(_Hsds):
    id: str
    name: str
    description: str | None = None
    relais: AreaExtension = Field(alias=EXTENSION)


class HsdsSchedule(_Hsds):
    id: str
    description: str = Field(description="opening hours, as the organisation wrote them")


class ServiceExtension(_Hsds):
    org_id: str
    service_id: str
    category: str
    sector: str = Field(description="humanitarian sector (cluster) code; empty if unknown")
    descriptions: LocalisedDescription
    national: bool
    cities: list[str]
    regions: list[str]
    sex: Sex
    populations: list[str]
    cost: Cost
    takes_referrals: bool
    capacity: Capacity
    # Absent (not null) until the organisation first sets its capacity: optional in the schema.
    capacity_set_at: datetime | None = None


class HsdsService(_Hsds):
    id: str
    organization_id: str
    name: str = Field(description="the French label of the service's category")
    description: str | None = None
    status: Literal["active", "inactive", "defunct", "temporarily closed"]
    alert: str | None = None
    application_process: str | None = None
    fees_description: str | None = None
    eligibility_description: str | None = None
    minimum_age: int | None = None
    maximum_age: int | None = None
    languages: list[HsdsLanguage]
    service_areas: list[HsdsServiceArea]
    schedules: list[HsdsSchedule]
    # Given only where one service is asked for, as HSDS's fully nested service has it.
    organization: HsdsOrganization | None = None
    relais: ServiceExtension = Field(alias=EXTENSION)


class OrganizationExtension(_Hsds):
    org_id: str
    version: int
    kind: OrganisationKind
    names: LocalisedText
    city: str = Field(description="Relais code of the city it is based in")


class HsdsOrganization(_Hsds):
    id: str
    name: str
    alternate_name: str | None = None
    description: str
    website: str | None = None
    services: list[HsdsService] | None = None
    relais: OrganizationExtension = Field(alias=EXTENSION)


HsdsOrganization.model_rebuild()
HsdsService.model_rebuild()

Item = TypeVar("Item", bound=BaseModel)


class HsdsPage(BaseModel, Generic[Item]):
    """HSDS 3.0's paginated list: the page's header, then its ``contents``."""

    total_items: int
    total_pages: int
    page_number: int = Field(description="from 1")
    size: int = Field(description="the number of entities in this page")
    first_page: bool
    last_page: bool
    empty: bool
    contents: list[Item]


class OrganizationPage(HsdsPage[HsdsOrganization]):
    pass


class ServicePage(HsdsPage[HsdsService]):
    pass


Page = TypeVar("Page", OrganizationPage, ServicePage)


def page_of(kind: type[Page], items: Sequence[Any], page_number: int, per_page: int) -> Page:
    """Page ``page_number`` (from 1) of ``items``, ``per_page`` at most; past the end, empty."""
    total_pages = math.ceil(len(items) / per_page)
    start = (page_number - 1) * per_page
    contents = list(items[start : start + per_page])
    return kind(
        total_items=len(items),
        total_pages=total_pages,
        page_number=page_number,
        size=len(contents),
        first_page=page_number == 1,
        last_page=page_number >= total_pages,
        empty=not contents,
        contents=contents,
    )


def hsds_organization(
    record: OrganisationPublished, ref: ReferenceData, *, with_services: bool = True
) -> HsdsOrganization:
    """An organisation as an HSDS ``organization``, with its services nested (or not)."""
    city, _ = _city(ref, record.city)
    description = f"{KIND[record.kind]} à {city}."
    if record.services:
        offered = " ; ".join(
            dict.fromkeys(_category_label(ref, o.category) for o in record.services)
        )
        description += f" Services : {offered}."
    return HsdsOrganization(
        id=organization_id(record.org_id),
        name=record.name.fr,
        alternate_name=record.name.ar or None,
        description=description,
        website=record.website or None,
        services=[hsds_service(record, offer, ref) for offer in record.services]
        if with_services
        else None,
        relais=OrganizationExtension(
            org_id=record.org_id,
            version=record.version,
            kind=record.kind,
            names=record.name,
            city=record.city,
        ),
    )


def hsds_service(
    record: OrganisationPublished,
    offer: ServiceOffer,
    ref: ReferenceData,
    *,
    with_organization: bool = False,
) -> HsdsService:
    """One service as an HSDS ``service``; ``with_organization`` nests its organisation."""
    codes = (record.org_id, offer.service_id)
    return HsdsService(
        id=service_id(*codes),
        organization_id=organization_id(record.org_id),
        name=_category_label(ref, offer.category),
        description=offer.description.fr or None,
        # Only active organisations are exported, and a service without room is still
        # running: "temporarily closed" would tell a reader it cannot be reached at all.
        status="active",
        alert=ALERT.get(offer.capacity),
        application_process=(
            "Orientation par les organisations membres du réseau, via Relais."
            if offer.takes_referrals
            else "Ne reçoit pas d'orientation via Relais."
        ),
        fees_description=FEES[offer.cost],
        eligibility_description=_eligibility(offer, ref),
        minimum_age=offer.eligibility.min_age,
        maximum_age=offer.eligibility.max_age,
        languages=[
            HsdsLanguage(
                id=stable_id("language", *codes, code),
                name=_language_label(ref, code),
                code=code,
            )
            for code in dict.fromkeys(offer.languages)
        ],
        service_areas=[_service_area(place, codes, ref) for place in places_of(record, offer)],
        schedules=[HsdsSchedule(id=stable_id("schedule", *codes), description=offer.hours)]
        if offer.hours
        else [],
        organization=hsds_organization(record, ref, with_services=False)
        if with_organization
        else None,
        relais=ServiceExtension(
            org_id=record.org_id,
            service_id=offer.service_id,
            category=offer.category,
            sector=_sector(ref, offer.category)[0],
            descriptions=offer.description,
            national=offer.national,
            cities=offer.cities,
            regions=offer.regions,
            sex=offer.eligibility.sex,
            populations=offer.eligibility.populations,
            cost=offer.cost,
            takes_referrals=offer.takes_referrals,
            capacity=offer.capacity,
            capacity_set_at=offer.capacity_set_at,
        ),
    )


def _eligibility(offer: ServiceOffer, ref: ReferenceData) -> str:
    rules = offer.eligibility
    parts = []
    if rules.min_age is not None and rules.max_age is not None:
        parts.append(f"De {rules.min_age} à {rules.max_age} ans")
    elif rules.min_age is not None:
        parts.append(f"À partir de {rules.min_age} ans")
    elif rules.max_age is not None:
        parts.append(f"Jusqu'à {rules.max_age} ans")
    if rules.sex in SEX:
        parts.append(SEX[rules.sex])
    if rules.populations:
        parts.append("Publics : " + ", ".join(_population_label(ref, p) for p in rules.populations))
    if not parts:
        return "Sans condition d'âge, de sexe ni de public."
    return ". ".join(parts) + "."


def _service_area(place: Place, codes: tuple[str, str], ref: ReferenceData) -> HsdsServiceArea:
    area_id = stable_id("service_area", *codes, place.level, place.code)
    if place.level == "national":
        return HsdsServiceArea(
            id=area_id,
            name=f"{COUNTRY} (tout le territoire)",
            relais=AreaExtension(level="national", code=COUNTRY_ISO3),
        )
    if place.level == "region":
        name, iso = _region(ref, place.code)
        return HsdsServiceArea(
            id=area_id,
            name=name,
            description=f"Région {name}, {COUNTRY}",
            relais=AreaExtension(level="region", code=place.code, iso=iso or None),
        )
    name, region = _city(ref, place.code)
    region_name = _region(ref, region)[0] if region else ""
    return HsdsServiceArea(
        id=area_id,
        name=name,
        description=f"{name} ({region_name}), {COUNTRY}" if region_name else f"{name}, {COUNTRY}",
        relais=AreaExtension(level="city", code=place.code, region=region),
    )


def hsds_organizations(
    records: Iterable[OrganisationPublished], ref: ReferenceData
) -> list[HsdsOrganization]:
    return [hsds_organization(record, ref) for record in active(records)]


def hsds_services(
    records: Iterable[OrganisationPublished], ref: ReferenceData, *, organization: str | None = None
) -> list[HsdsService]:
    """The services of the active organisations; of one, if ``organization`` names it."""
    return [
        hsds_service(record, offer, ref)
        for record in active(records)
        if organization is None or _is(record, organization)
        for offer in record.services
    ]


def _is(record: OrganisationPublished, key: str) -> bool:
    """Whether ``key`` is this organisation's Relais code or its HSDS id."""
    return key in (record.org_id, organization_id(record.org_id))


def find_organization(
    records: Iterable[OrganisationPublished], key: str
) -> OrganisationPublished | None:
    """The active organisation whose Relais code or HSDS id is ``key``."""
    return next((record for record in active(records) if _is(record, key)), None)


def find_service(
    records: Iterable[OrganisationPublished], hsds_id: str
) -> tuple[OrganisationPublished, ServiceOffer] | None:
    """The active organisation and the service whose HSDS id is ``hsds_id``."""
    for record in active(records):
        for offer in record.services:
            if service_id(record.org_id, offer.service_id) == hsds_id:
                return record, offer
    return None


# 3W: who does what where.

COVERAGE = {Level.NATIONAL: "Nationale", Level.REGION: "Régionale", Level.CITY: "Locale"}

THREE_W_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Organisation", "#org +name"),
    ("Code organisation", "#org +code"),
    ("Type d'organisation", "#org +type"),
    ("Secteur", "#sector +name"),
    ("Code secteur", "#sector +code"),
    ("Sous-secteur (catégorie de service)", "#subsector +name"),
    ("Code catégorie", "#subsector +code"),
    ("Pays", "#country +name"),
    ("Code pays", "#country +code"),
    ("Région", "#adm1 +name"),
    ("Code région (ISO 3166-2)", "#adm1 +code"),
    # A city is a point location, not a province: #adm2 would be the wrong level.
    ("Ville", "#loc +name"),
    ("Code ville", "#loc +code"),
    ("Couverture", "#meta +coverage"),
    ("Langues", "#service +languages"),
    ("Publics", "#beneficiary +type"),
    # #status is an activity's status; #capacity is kept for a number ("25 lits").
    ("Capacité d'accueil", "#status +capacity"),
    ("Capacité mise à jour le", "#date +capacity"),
    ("Reçoit des orientations Relais", "#status +referrals"),
)

# A spreadsheet runs a cell starting with one of these as a formula ("CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def three_w_rows(
    records: Iterable[OrganisationPublished],
    ref: ReferenceData,
    *,
    zone: ZoneInfo = NODE_ZONE,
) -> Iterator[list[str]]:
    """The header row, the HXL hashtag row, then one row per organisation, service and place.
    Its times are in ``zone`` (the node's), named in their column's header."""
    yield [
        f"{header} (heure locale, {zone.key})" if tag == ZONED_TAG else header
        for header, tag in THREE_W_COLUMNS
    ]
    yield [tag for _, tag in THREE_W_COLUMNS]
    for record in active(records):
        for offer in record.services:
            for place in places_of(record, offer):
                row = _three_w_row(record, offer, place, ref, zone)
                yield [_cell(value) for value in row]


def _three_w_row(
    record: OrganisationPublished,
    offer: ServiceOffer,
    place: Place,
    ref: ReferenceData,
    zone: ZoneInfo,
) -> list[str]:
    region_code = ""
    city_name = city_code = ""
    if place.level is Level.REGION:
        region_code = place.code
    elif place.level is Level.CITY:
        city_code = place.code
        city_name, region = _city(ref, city_code)
        region_code = region or ""
    region_name, region_iso = _region(ref, region_code) if region_code else ("", "")
    sector_code, sector_name = _sector(ref, offer.category)
    set_at = offer.capacity_set_at
    return [
        record.name.fr,
        record.org_id,
        KIND[record.kind],
        sector_name,
        sector_code,
        _category_label(ref, offer.category),
        offer.category,
        COUNTRY,
        COUNTRY_ISO3,
        region_name,
        region_iso,
        city_name,
        city_code,
        COVERAGE[place.level],
        ", ".join(_language_label(ref, code) for code in dict.fromkeys(offer.languages)),
        ", ".join(_population_label(ref, code) for code in offer.eligibility.populations),
        CAPACITY[offer.capacity],
        set_at.astimezone(zone).strftime(LOCAL_TIME) if set_at else "",
        "oui" if offer.takes_referrals else "non",
    ]


def _cell(value: str) -> str:
    """``value``, made inert for a spreadsheet if it would start a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class _Line:
    """A file-like object whose ``write`` hands back what it was given, not stores it."""

    def write(self, text: str) -> str:
        return text


def csv_lines(rows: Iterable[Sequence[str]]) -> Iterator[str]:
    """Each row as one CSV line (RFC 4180: quoted as needed, CRLF ends), one at a time."""
    writer = csv.writer(_Line())
    for row in rows:
        line: str = writer.writerow(row)
        yield line


def three_w_filename(day: date) -> str:
    return f"relais-3w-{day.isoformat()}.csv"
