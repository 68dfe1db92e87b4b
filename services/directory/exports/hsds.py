"""The directory as an Open Referral HSDS 3.0 view
(https://github.com/openreferral/specification/tree/3.0/schema).

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
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from services.directory.exports import common
from services.directory.reference import ReferenceData
from shared.contracts.directory import (
    Capacity,
    Cost,
    LocalisedDescription,
    LocalisedText,
    OrganisationKind,
    OrganisationPublished,
    ServiceOffer,
    Sex,
)

HSDS_VERSION = "3.0"
# Every HSDS id is uuid5(ID_NAMESPACE, "<object>/<codes>"): anyone can recompute it.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:relais:hsds")
EXTENSION = "x-relais"


def stable_id(kind: str, *codes: str) -> str:
    """The HSDS id of an object: codes never contain "/", so the name is unambiguous."""
    return str(uuid.uuid5(ID_NAMESPACE, "/".join((kind, *codes))))


def organization_id(org_id: str) -> str:
    return stable_id("organization", org_id)


def service_id(org_id: str, code: str) -> str:
    return stable_id("service", org_id, code)


# French texts (the working language of the secretariat's reports).
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


# HSDS 3.0 objects. Optional fields left as None are dropped from the JSON (exclude_none).


class _Hsds(BaseModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True, frozen=True)


class HsdsLanguage(_Hsds):
    id: str
    name: str = Field(description="the language's French name")
    code: str = Field(description="ISO 639-3")


class AreaExtension(_Hsds):
    level: common.Level
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
    city, _ = common.city(ref, record.city)
    description = f"{common.KIND[record.kind]} à {city}."
    if record.services:
        offered = " ; ".join(
            dict.fromkeys(common.category_label(ref, o.category) for o in record.services)
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
        name=common.category_label(ref, offer.category),
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
                name=common.language_label(ref, code),
                code=code,
            )
            for code in dict.fromkeys(offer.languages)
        ],
        service_areas=[
            _service_area(place, codes, ref) for place in common.places_of(record, offer)
        ],
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
            sector=common.sector(ref, offer.category)[0],
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
        parts.append(
            "Publics : " + ", ".join(common.population_label(ref, p) for p in rules.populations)
        )
    if not parts:
        return "Sans condition d'âge, de sexe ni de public."
    return ". ".join(parts) + "."


def _service_area(
    place: common.Place, codes: tuple[str, str], ref: ReferenceData
) -> HsdsServiceArea:
    area_id = stable_id("service_area", *codes, place.level, place.code)
    if place.level == "national":
        return HsdsServiceArea(
            id=area_id,
            name=f"{common.COUNTRY} (tout le territoire)",
            relais=AreaExtension(level="national", code=common.COUNTRY_ISO3),
        )
    if place.level == "region":
        name, iso = common.region(ref, place.code)
        return HsdsServiceArea(
            id=area_id,
            name=name,
            description=f"Région {name}, {common.COUNTRY}",
            relais=AreaExtension(level="region", code=place.code, iso=iso or None),
        )
    name, region = common.city(ref, place.code)
    region_name = common.region(ref, region)[0] if region else ""
    return HsdsServiceArea(
        id=area_id,
        name=name,
        description=f"{name} ({region_name}), {common.COUNTRY}"
        if region_name
        else f"{name}, {common.COUNTRY}",
        relais=AreaExtension(level="city", code=place.code, region=region),
    )


def hsds_organizations(
    records: Iterable[OrganisationPublished], ref: ReferenceData
) -> list[HsdsOrganization]:
    return [hsds_organization(record, ref) for record in common.active(records)]


def hsds_services(
    records: Iterable[OrganisationPublished], ref: ReferenceData, *, organization: str | None = None
) -> list[HsdsService]:
    """The services of the active organisations; of one, if ``organization`` names it."""
    return [
        hsds_service(record, offer, ref)
        for record in common.active(records)
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
    return next((record for record in common.active(records) if _is(record, key)), None)


def find_service(
    records: Iterable[OrganisationPublished], hsds_id: str
) -> tuple[OrganisationPublished, ServiceOffer] | None:
    """The active organisation and the service whose HSDS id is ``hsds_id``."""
    for record in common.active(records):
        for offer in record.services:
            if service_id(record.org_id, offer.service_id) == hsds_id:
                return record, offer
    return None
