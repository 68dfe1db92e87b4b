"""Who should receive a referral: the directory's ranking of services for one person's needs.

Pure rules over plain values: ``search.py`` loads the candidates (with a SQL prefilter on
category, capacity, status and place), this module decides which are excluded, scores the
others and says why, in machine codes the web layer translates.

A service is EXCLUDED, never suggested, when it is the sender's own organisation's, its
organisation is not active, it is of another category, it takes no referrals, its capacity is
closed, it covers neither the person's city, nor that city's region, nor all of Morocco, or the
person is outside its eligibility (sex, age range, populations). A service that names no area
at all is taken to be offered in the city its organisation is based in.

What the sender did not say is not held against a service: with no age given, an age-limited
service stays, with a ``check_age`` reason (likewise ``check_sex``, ``check_population``).
A service restricted to some populations (not listing ``everyone``) is excluded only when the
person's populations are given and none of them is served.

Points of the services kept (the score is their sum; each part has its reason):

    place       same city 30 · the city's region 20 · national 10 (no city asked: 0)
    language    a language in common 15 · none in common, or the service lists none: 0
    capacity    open 20 · waitlist 12 (routine), 6 (priority), 0 (emergency)
    population  a service meant for one of the person's populations 5
    response    what the response-time hook gives the organisation (no hook yet: 0)

So, other things equal, same city beats same region beats national, a common language beats
none and open beats waitlist. Across parts: a common language outweighs one step of distance
but not two (same region and speaking the person's language beats same city without it; a
national service does not); an open service in the region outranks a waitlist in the same city
when the referral is a priority or an emergency, not when it is routine. Ties go to the
organisation id, then the service id, so the same question always gets the same list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.directory import (
    Capacity,
    Code,
    LocalisedText,
    MembershipStatus,
    ServiceOffer,
    Sex,
)


class Urgency(StrEnum):
    ROUTINE = "routine"
    PRIORITY = "priority"
    EMERGENCY = "emergency"


PLACE_POINTS = {"same_city": 30, "same_region": 20, "national": 10}
LANGUAGE_POINTS = 15
OPEN_POINTS = 20
# A waitlist is worth less the sooner the person needs help.
WAITLIST_POINTS = {Urgency.ROUTINE: 12, Urgency.PRIORITY: 6, Urgency.EMERGENCY: 0}
POPULATION_POINTS = 5
# The population code of the reference data that a service uses to say it is for anyone.
EVERYONE = "everyone"


class MatchRequest(BaseModel):
    """What the sender knows of the person's need; only the category is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Code
    city: Code | None = None
    languages: list[str] = Field(
        default_factory=list, max_length=10, description="ISO 639-3 (or 639-1) codes"
    )
    populations: list[Code] = Field(default_factory=list, max_length=10)
    age: int | None = Field(default=None, ge=0, le=120)
    sex: Literal["female", "male"] | None = None
    urgency: Urgency = Urgency.ROUTINE
    limit: int = Field(default=20, ge=1, le=100, description="how many suggestions at most")


@dataclass(frozen=True)
class Place:
    """The person's city and the region it belongs to (from the reference data)."""

    city: str
    region: str | None


@dataclass(frozen=True)
class Candidate:
    """One service of one organisation, as loaded for ranking."""

    org_id: str
    org_name: LocalisedText
    org_city: str
    org_status: MembershipStatus
    service: ServiceOffer


class _Code(BaseModel):
    model_config = ConfigDict(frozen=True)


class SameCity(_Code):
    code: Literal["same_city"] = "same_city"
    city: str


class SameRegion(_Code):
    code: Literal["same_region"] = "same_region"
    region: str


class National(_Code):
    code: Literal["national"] = "national"


class LanguageMatch(_Code):
    code: Literal["language_match"] = "language_match"
    languages: list[str]


class NoCommonLanguage(_Code):
    code: Literal["no_common_language"] = "no_common_language"


class LanguagesUnknown(_Code):
    """The service lists no language: it may or may not speak the person's."""

    code: Literal["languages_unknown"] = "languages_unknown"


class CapacityOpen(_Code):
    code: Literal["capacity_open"] = "capacity_open"


class CapacityWaitlist(_Code):
    code: Literal["capacity_waitlist"] = "capacity_waitlist"


class EligiblePopulation(_Code):
    """The service is meant for these populations of the person's."""

    code: Literal["eligible_population"] = "eligible_population"
    populations: list[str]


class CheckAge(_Code):
    """The service has an age range and the person's age was not given."""

    code: Literal["check_age"] = "check_age"
    min_age: int | None
    max_age: int | None


class CheckSex(_Code):
    code: Literal["check_sex"] = "check_sex"
    sex: Sex


class CheckPopulation(_Code):
    """The service is only for these populations and the person's were not given."""

    code: Literal["check_population"] = "check_population"
    populations: list[str]


class ResponseTime(_Code):
    code: Literal["response_time"] = "response_time"
    points: int


Reason = Annotated[
    SameCity
    | SameRegion
    | National
    | LanguageMatch
    | NoCommonLanguage
    | LanguagesUnknown
    | CapacityOpen
    | CapacityWaitlist
    | EligiblePopulation
    | CheckAge
    | CheckSex
    | CheckPopulation
    | ResponseTime,
    Field(discriminator="code"),
]


class OwnOrganisation(_Code):
    code: Literal["own_organisation"] = "own_organisation"


class NotActive(_Code):
    code: Literal["organisation_not_active"] = "organisation_not_active"
    status: MembershipStatus


class OtherCategory(_Code):
    code: Literal["other_category"] = "other_category"
    category: str


class NoReferrals(_Code):
    code: Literal["not_taking_referrals"] = "not_taking_referrals"


class CapacityClosed(_Code):
    code: Literal["capacity_closed"] = "capacity_closed"


class OutsideArea(_Code):
    code: Literal["outside_area"] = "outside_area"
    city: str


class SexNotServed(_Code):
    code: Literal["sex_not_served"] = "sex_not_served"
    sex: Sex


class AgeOutsideRange(_Code):
    code: Literal["age_outside_range"] = "age_outside_range"
    min_age: int | None
    max_age: int | None


class PopulationNotServed(_Code):
    code: Literal["population_not_served"] = "population_not_served"
    populations: list[str]


Exclusion = (
    OwnOrganisation
    | NotActive
    | OtherCategory
    | NoReferrals
    | CapacityClosed
    | OutsideArea
    | SexNotServed
    | AgeOutsideRange
    | PopulationNotServed
)


class Suggestion(BaseModel):
    """One service the sender may refer the person to, its score and why."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    org_name: LocalisedText
    org_city: str
    service: ServiceOffer
    score: int
    reasons: list[Reason]


# The hook a later issue plugs measured response times into: points for an organisation id.
ResponseTimePoints = Callable[[str], int]


@dataclass(frozen=True)
class Area:
    """Where a service is offered."""

    cities: tuple[str, ...]
    regions: tuple[str, ...]
    national: bool


def area_of(candidate: Candidate) -> Area:
    """The service's area; one that names none is offered where its organisation is based."""
    offer = candidate.service
    if not (offer.cities or offer.regions or offer.national):
        return Area((candidate.org_city,), (), False)
    return Area(tuple(offer.cities), tuple(offer.regions), offer.national)


def place_reason(place: Place, area: Area) -> SameCity | SameRegion | National | None:
    """How close the service is to the person: the nearest level it covers, or None."""
    if place.city in area.cities:
        return SameCity(city=place.city)
    if place.region is not None and place.region in area.regions:
        return SameRegion(region=place.region)
    if area.national:
        return National()
    return None


def restricted_to(offer: ServiceOffer) -> list[str]:
    """The populations a service is only for; empty if it is for anyone."""
    populations = offer.eligibility.populations
    return [] if EVERYONE in populations else list(populations)


def why_excluded(
    request: MatchRequest, candidate: Candidate, *, place: Place | None, sender_org: str | None
) -> Exclusion | None:
    """The first reason ``candidate`` may not be suggested, or None if it may."""
    offer = candidate.service
    eligibility = offer.eligibility
    if candidate.org_id == sender_org:
        return OwnOrganisation()
    if candidate.org_status is not MembershipStatus.ACTIVE:
        return NotActive(status=candidate.org_status)
    if offer.category != request.category:
        return OtherCategory(category=offer.category)
    if not offer.takes_referrals:
        return NoReferrals()
    if offer.capacity is Capacity.CLOSED:
        return CapacityClosed()
    if place is not None and place_reason(place, area_of(candidate)) is None:
        return OutsideArea(city=place.city)
    if request.sex is not None and eligibility.sex not in (Sex.ANY, request.sex):
        return SexNotServed(sex=eligibility.sex)
    if not _within(request.age, eligibility.min_age, eligibility.max_age):
        return AgeOutsideRange(min_age=eligibility.min_age, max_age=eligibility.max_age)
    only_for = restricted_to(offer)
    if request.populations and only_for and not set(request.populations) & set(only_for):
        return PopulationNotServed(populations=only_for)
    return None


def suggestion(
    request: MatchRequest,
    candidate: Candidate,
    *,
    place: Place | None,
    response_time: ResponseTimePoints | None = None,
) -> Suggestion:
    """The score of a candidate that is not excluded, and the reasons for it."""
    offer = candidate.service
    scored: list[tuple[int, Reason]] = []
    if place is not None:
        near = place_reason(place, area_of(candidate))
        if near is not None:
            scored.append((PLACE_POINTS[near.code], near))
    if request.languages:
        scored.append(_language(request.languages, offer.languages))
    if offer.capacity is Capacity.OPEN:
        scored.append((OPEN_POINTS, CapacityOpen()))
    else:
        scored.append((WAITLIST_POINTS[request.urgency], CapacityWaitlist()))
    scored.extend((0, check) for check in _unchecked(request, offer))
    served = [p for p in request.populations if p in restricted_to(offer)]
    if served:
        scored.append((POPULATION_POINTS, EligiblePopulation(populations=served)))
    # Measured response times are not collected yet: without the hook they count for nothing.
    points = response_time(candidate.org_id) if response_time is not None else 0
    if points:
        scored.append((points, ResponseTime(points=points)))
    return Suggestion(
        org_id=candidate.org_id,
        org_name=candidate.org_name,
        org_city=candidate.org_city,
        service=offer,
        score=sum(points for points, _ in scored),
        reasons=[reason for _, reason in scored],
    )


def rank(
    request: MatchRequest,
    candidates: Iterable[Candidate],
    *,
    place: Place | None,
    sender_org: str | None,
    response_time: ResponseTimePoints | None = None,
) -> list[Suggestion]:
    """Every candidate that may be suggested, best first; ties by org id, then service id.

    ``place`` is the person's city and its region (None when the request names no city);
    ``sender_org`` is the referring organisation, never suggested to itself.
    """
    suggestions = [
        suggestion(request, candidate, place=place, response_time=response_time)
        for candidate in candidates
        if why_excluded(request, candidate, place=place, sender_org=sender_org) is None
    ]
    return sorted(suggestions, key=lambda s: (-s.score, s.org_id, s.service.service_id))


def _within(age: int | None, min_age: int | None, max_age: int | None) -> bool:
    """Whether ``age`` is in the range; an age not given is not held against anyone."""
    if age is None:
        return True
    return (min_age is None or age >= min_age) and (max_age is None or age <= max_age)


def _language(wanted: list[str], spoken: list[str]) -> tuple[int, Reason]:
    if not spoken:
        return 0, LanguagesUnknown()
    common = [language for language in wanted if language in spoken]
    if common:
        return LANGUAGE_POINTS, LanguageMatch(languages=common)
    return 0, NoCommonLanguage()


def _unchecked(request: MatchRequest, offer: ServiceOffer) -> list[Reason]:
    """The service's conditions the request said nothing about: the sender must check them."""
    eligibility = offer.eligibility
    checks: list[Reason] = []
    if request.age is None and (eligibility.min_age is not None or eligibility.max_age is not None):
        checks.append(CheckAge(min_age=eligibility.min_age, max_age=eligibility.max_age))
    if request.sex is None and eligibility.sex is not Sex.ANY:
        checks.append(CheckSex(sex=eligibility.sex))
    only_for = restricted_to(offer)
    if not request.populations and only_for:
        checks.append(CheckPopulation(populations=only_for))
    return checks
