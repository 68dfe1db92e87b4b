"""The directory as a 3W ("who does what where") table.

A CSV with a row of French headers, then a row of HXL hashtags (HXL 1.1 core schema),
then one row per organisation, service and place (``THREE_W_COLUMNS``). A national service
has a row naming the country and no region ("Couverture" says "Nationale"); a service that
names no place has its organisation's city, as matching assumes. Region codes are ISO
3166-2 (MA-01 … MA-12), not OCHA P-codes: a tool expecting P-codes must map them. A cell
that a spreadsheet would run as a formula is prefixed with "'".
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from zoneinfo import ZoneInfo

from services.directory.exports import common
from services.directory.reference import ReferenceData
from shared.contracts.directory import Capacity, OrganisationPublished, ServiceOffer
from shared.settings import DEFAULT_TIMEZONE

# The 3W's times are people's (a secretariat's spreadsheet): in the node's zone, named in the
# column's header (zoneinfo's conversion, never PostgreSQL's zone data).
NODE_ZONE = ZoneInfo(DEFAULT_TIMEZONE)
LOCAL_TIME = "%Y-%m-%d %H:%M"
ZONED_TAG = "#date +capacity"  # the column of a time: its header names the zone
CAPACITY = {
    Capacity.OPEN: "Ouvert",
    Capacity.WAITLIST: "Liste d'attente",
    Capacity.CLOSED: "Complet",
}
COVERAGE = {
    common.Level.NATIONAL: "Nationale",
    common.Level.REGION: "Régionale",
    common.Level.CITY: "Locale",
}

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
    for record in common.active(records):
        for offer in record.services:
            for place in common.places_of(record, offer):
                row = _three_w_row(record, offer, place, ref, zone)
                yield [_cell(value) for value in row]


def _three_w_row(
    record: OrganisationPublished,
    offer: ServiceOffer,
    place: common.Place,
    ref: ReferenceData,
    zone: ZoneInfo,
) -> list[str]:
    region_code = ""
    city_name = city_code = ""
    if place.level is common.Level.REGION:
        region_code = place.code
    elif place.level is common.Level.CITY:
        city_code = place.code
        city_name, region = common.city(ref, city_code)
        region_code = region or ""
    region_name, region_iso = common.region(ref, region_code) if region_code else ("", "")
    sector_code, sector_name = common.sector(ref, offer.category)
    set_at = offer.capacity_set_at
    return [
        record.name.fr,
        record.org_id,
        common.KIND[record.kind],
        sector_name,
        sector_code,
        common.category_label(ref, offer.category),
        offer.category,
        common.COUNTRY,
        common.COUNTRY_ISO3,
        region_name,
        region_iso,
        city_name,
        city_code,
        COVERAGE[place.level],
        ", ".join(common.language_label(ref, code) for code in dict.fromkeys(offer.languages)),
        ", ".join(common.population_label(ref, code) for code in offer.eligibility.populations),
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
