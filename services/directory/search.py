"""Finding services in the directory: the filtered, paged search, and the candidates of a match.

Both read ``directory.service`` (one row per offer, with its folded ``search_text``) joined to
the offering organisation; only ACTIVE organisations are ever returned. The offer itself comes
from the organisation's stored record, so what is shown is exactly what the hub published.

Place, in both: a service is in a city if it lists that city, lists the city's region, or is
national; in a region if it lists the region or one of its cities, or is national. A service
that names no area at all is offered in the city its organisation is based in.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.directory import domain, matching, reference
from shared.contracts.directory import (
    CODE,
    Capacity,
    LocalisedText,
    MembershipStatus,
    ServiceOffer,
)
from shared.db import Connection
from shared.errors import Invalid

# The offer of this row, taken from its organisation's published record.
_OFFER = (
    "(SELECT offer FROM jsonb_array_elements(o.record -> 'services') AS offer"
    " WHERE offer ->> 'service_id' = s.service_id) AS offer"
)
_NO_AREA = "(cardinality(s.cities) = 0 AND cardinality(s.regions) = 0 AND NOT s.national)"
_ACTIVE = f"o.status = '{MembershipStatus.ACTIVE.value}'"
_CODE = re.compile(CODE)
MAX_WORDS = 10


@dataclass(frozen=True)
class RegionArea:
    """A region and its cities, as a region filter needs them."""

    region: str
    cities: tuple[str, ...]


@dataclass(frozen=True)
class ServiceQuery:
    """The filters of a search; several values of one filter mean any of them.

    ``populations`` finds services meant for one of them (listing it), not services open to
    anyone; ``words`` are folded (``domain.fold``) and must all be found.
    """

    categories: tuple[str, ...] = ()
    city: matching.Place | None = None
    region: RegionArea | None = None
    languages: tuple[str, ...] = ()
    populations: tuple[str, ...] = ()
    capacities: tuple[Capacity, ...] = ()
    words: tuple[str, ...] = ()


class ServiceListing(BaseModel):
    """One service found, with the organisation that offers it."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    org_name: LocalisedText
    org_city: str
    service: ServiceOffer


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last (org id, service id) it showed."""

    org_id: str
    service_id: str


def place_of(city: str, field: str = "city") -> matching.Place:
    """The person's place from a city code of the reference data (``Invalid`` if unknown)."""
    return matching.Place(city=city, region=reference.region_of(city, field))


def region_area(region: str, field: str = "region") -> RegionArea:
    return RegionArea(region, tuple(city.code for city in reference.cities_in(region, field)))


def words_of(text: str) -> tuple[str, ...]:
    """The folded words of a free-text query, at most ``MAX_WORDS`` of them."""
    words = tuple(dict.fromkeys(domain.fold(text).split()))
    if len(words) > MAX_WORDS:
        raise Invalid(f"search with at most {MAX_WORDS} words", field="q")
    return words


def encode_cursor(position: Position) -> str:
    """An opaque cursor: clients pass it back, they do not read it."""
    raw = f"{position.org_id} {position.service_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        org_id, service_id = raw.split(" ")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid("not a cursor this search returned", field=field) from None
    if not (_is_code(org_id) and _is_code(service_id)):
        raise Invalid("not a cursor this search returned", field=field)
    return Position(org_id, service_id)


async def search_services(
    conn: Connection, query: ServiceQuery, *, after: Position | None = None, limit: int = 20
) -> tuple[list[ServiceListing], Position | None]:
    """One page of services, by organisation id then service id, and where the next starts
    (None on the last page)."""
    where = [_ACTIVE]
    arg = _Parameters()
    if query.categories:
        where.append(f"s.category = ANY({arg(list(query.categories))}::text[])")
    if query.city is not None:
        where.append(_in_city(query.city, arg))
    if query.region is not None:
        cities = arg(list(query.region.cities))
        where.append(
            f"(s.national OR {arg(query.region.region)} = ANY(s.regions)"
            f" OR s.cities && {cities}::text[] OR ({_NO_AREA} AND o.city = ANY({cities}::text[])))"
        )
    if query.languages:
        where.append(f"s.languages && {arg(list(query.languages))}::text[]")
    if query.populations:
        where.append(f"s.populations && {arg(list(query.populations))}::text[]")
    if query.capacities:
        where.append(f"s.capacity = ANY({arg([c.value for c in query.capacities])}::text[])")
    # strpos, not LIKE: a word with % or _ in it is text to find, not a pattern.
    where.extend(f"strpos(s.search_text, {arg(word)}) > 0" for word in query.words)
    if after is not None:
        where.append(f"(s.org_id, s.service_id) > ({arg(after.org_id)}, {arg(after.service_id)})")
    rows = await conn.fetch(
        f"SELECT s.org_id, o.name, o.city, {_OFFER}"
        " FROM directory.service s JOIN directory.organisation o USING (org_id)"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY s.org_id, s.service_id LIMIT {arg(limit + 1)}",
        *arg.values,
    )
    listings = [
        ServiceListing(
            org_id=row["org_id"],
            org_name=LocalisedText.model_validate(row["name"]),
            org_city=row["city"],
            service=ServiceOffer.model_validate(row["offer"]),
        )
        for row in rows[:limit]
    ]
    if len(rows) <= limit:
        return listings, None
    last = listings[-1]
    return listings, Position(last.org_id, last.service.service_id)


async def candidates(
    conn: Connection,
    request: matching.MatchRequest,
    *,
    place: matching.Place | None,
    sender_org: str | None,
) -> list[matching.Candidate]:
    """The services that may be suggested for ``request``, as far as SQL can tell cheaply:
    category, takes referrals, not closed, active organisation, not the sender's, in place.
    ``matching`` applies every rule again, and eligibility, when it ranks them."""
    where = [
        _ACTIVE,
        "s.category = $1",
        "s.takes_referrals",
        f"s.capacity <> '{Capacity.CLOSED.value}'",
        "o.org_id IS DISTINCT FROM $2",
    ]
    arg = _Parameters(request.category, sender_org)
    if place is not None:
        where.append(_in_city(place, arg))
    rows = await conn.fetch(
        f"SELECT s.org_id, o.name, o.city, o.status, {_OFFER}"
        " FROM directory.service s JOIN directory.organisation o USING (org_id)"
        f" WHERE {' AND '.join(where)}",
        *arg.values,
    )
    return [
        matching.Candidate(
            org_id=row["org_id"],
            org_name=LocalisedText.model_validate(row["name"]),
            org_city=row["city"],
            org_status=MembershipStatus(row["status"]),
            service=ServiceOffer.model_validate(row["offer"]),
        )
        for row in rows
    ]


def languages(codes: list[str] | tuple[str, ...], field: str) -> tuple[str, ...]:
    """ISO 639-3 codes, each once: ``fr`` and ``fra`` are one language."""
    return tuple(dict.fromkeys(reference.check_language(code, field) for code in codes))


def checked(request: matching.MatchRequest) -> matching.MatchRequest:
    """A match request with its codes checked (``Invalid`` names the field) and normalised."""
    if request.city is not None:
        reference.check_city(request.city, "city")
    return request.model_copy(
        update={
            "category": reference.check_category(request.category, "category"),
            "languages": list(languages(request.languages, "languages")),
            "populations": [
                reference.check_population(p, "populations") for p in request.populations
            ],
        }
    )


async def suggest(
    conn: Connection,
    request: matching.MatchRequest,
    *,
    sender_org: str | None,
    response_time: matching.ResponseTimePoints | None = None,
) -> list[matching.Suggestion]:
    """The best ``request.limit`` services for a referral, ranked by ``matching.rank``.

    ``request`` holds checked codes (languages as ISO 639-3): the API checks them first.
    """
    place = place_of(request.city) if request.city is not None else None
    found = await candidates(conn, request, place=place, sender_org=sender_org)
    ranked = matching.rank(
        request, found, place=place, sender_org=sender_org, response_time=response_time
    )
    return ranked[: request.limit]


class _Parameters:
    """The values of a query, each given its ``$n`` placeholder as it is added."""

    def __init__(self, *values: Any) -> None:
        self.values: list[Any] = list(values)

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _in_city(place: matching.Place, arg: _Parameters) -> str:
    city = arg(place.city)
    region = arg(place.region)
    return (
        f"(s.national OR {city} = ANY(s.cities) OR {region} = ANY(s.regions)"
        f" OR ({_NO_AREA} AND o.city = {city}))"
    )


def _is_code(text: str) -> bool:
    return _CODE.fullmatch(text) is not None
