"""What both exports read the same way: the active organisations, the places a service is
offered in, and the French labels of the codes (the working language of the secretariat's
reports)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from services.directory.reference import ReferenceData
from shared.contracts.directory import (
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
    ServiceOffer,
)

# French texts of the exports (the working language of the secretariat's reports).
LANG = "fr"
KIND = {
    OrganisationKind.NGO: "ONG",
    OrganisationKind.MIGRANT_LED: "Association de migrants",
    OrganisationKind.INTERNATIONAL: "Organisation internationale",
    OrganisationKind.PUBLIC_SERVICE: "Service public",
    OrganisationKind.SECRETARIAT: "Secrétariat du réseau",
}
COUNTRY = "Maroc"
COUNTRY_ISO3 = "MAR"


# Looking codes up: a record may hold a code the reference data no longer lists (a replica
# applies whatever the hub broadcast); the export then shows the code rather than failing.


def category_label(ref: ReferenceData, code: str) -> str:
    category = ref.categories.get(code)
    return category.label[LANG] if category else code


def sector(ref: ReferenceData, category_code: str) -> tuple[str, str]:
    """(code, French label) of the sector a category is counted under; ("", "") if unknown."""
    category = ref.categories.get(category_code)
    sector = ref.sectors.get(category.sector) if category else None
    return (sector.code, sector.label[LANG]) if sector else ("", "")


def region(ref: ReferenceData, code: str) -> tuple[str, str]:
    """(French label, ISO 3166-2 code) of a region."""
    region = ref.regions.get(code)
    return (region.label[LANG], region.iso) if region else (code, "")


def city(ref: ReferenceData, code: str) -> tuple[str, str | None]:
    """(French label, region code) of a city."""
    city = ref.cities.get(code)
    return (city.label[LANG], city.region) if city else (code, None)


def language_label(ref: ReferenceData, code: str) -> str:
    language = ref.languages.get(code)
    return language.label[LANG] if language else code


def population_label(ref: ReferenceData, code: str) -> str:
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
