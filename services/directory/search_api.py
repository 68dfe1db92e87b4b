"""Directory search over HTTP: browse the services of active members, and ask who should
receive a referral. Mounted under ``/api/v1/directory``; any authenticated member may call it.

Codes are checked against the reference data before any query (422 naming the field, with the
code probably meant); languages may be sent as ISO 639-1 or 639-3 codes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.directory import matching, reference, search
from shared.auth import Principal, require
from shared.contracts.directory import Capacity
from shared.service import ServiceContext, service_context

router = APIRouter()
Context = Annotated[ServiceContext, Depends(service_context("directory"))]
Anyone = Annotated[Principal, Depends(require())]
Codes = Annotated[list[str] | None, Query(max_length=20)]


class ServicePage(BaseModel):
    """One page of a search; pass ``next_cursor`` back as ``cursor`` for the next."""

    services: list[search.ServiceListing]
    next_cursor: str | None = Field(description="None on the last page")


class Suggestions(BaseModel):
    """The services a referral could go to, best first."""

    suggestions: list[matching.Suggestion]


@router.get(
    "/services",
    summary="Search the services of active member organisations",
    description=(
        "Filters combine with AND; a filter given several times (`?language=wol&language=bam`)"
        " matches any of its values. `city`: services listing the city or its region, or"
        " national. `region`: services listing the region or one of its cities, or national"
        " (a service naming no area is in its organisation's city)."
        " `population`: services meant for that population. `q`: every word must appear in"
        " the organisation's name or the service's description (any language; case, accents"
        " and Arabic vowel marks ignored). Every service of the active organisations is"
        " searched, whatever its capacity, the caller's own included. Sorted by organisation"
        " id, then service id."
    ),
)
async def search_services(
    ctx: Context,
    _: Anyone,
    category: Codes = None,
    city: str | None = None,
    region: str | None = None,
    language: Codes = None,
    population: Codes = None,
    capacity: Annotated[list[Capacity] | None, Query(max_length=3)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ServicePage:
    query = search.ServiceQuery(
        categories=tuple(reference.check_category(c, "category") for c in category or ()),
        city=search.place_of(city) if city is not None else None,
        region=search.region_area(region) if region is not None else None,
        languages=search.languages(language or (), "language"),
        populations=tuple(reference.check_population(p, "population") for p in population or ()),
        capacities=tuple(capacity or ()),
        words=search.words_of(q or ""),
    )
    after = search.decode_cursor(cursor) if cursor is not None else None
    async with ctx.pool.acquire() as conn:
        services, last = await search.search_services(conn, query, after=after, limit=limit)
    return ServicePage(
        services=services, next_cursor=search.encode_cursor(last) if last is not None else None
    )


@router.post(
    "/match",
    summary="Suggest organisations for a referral, ranked, with the reasons for each",
    description=(
        "Services of the category that take referrals, are not closed, cover the person's city"
        " (the city, its region, or national) and whose eligibility the person meets; never the"
        " caller's own organisation. Each suggestion has a score and `reasons`, machine codes"
        " with parameters (`same_city`, `language_match`, `capacity_waitlist`, `check_age`...)."
        " The person's profile travels in the body only, and is not stored."
    ),
)
async def match(request: matching.MatchRequest, ctx: Context, caller: Anyone) -> Suggestions:
    async with ctx.pool.acquire() as conn:
        suggestions = await search.suggest(conn, search.checked(request), sender_org=caller.org)
    return Suggestions(suggestions=suggestions)
