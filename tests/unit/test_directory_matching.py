"""Who a referral is suggested to: exclusions, ranking and the reasons given, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from services.directory import matching
from services.directory.matching import Candidate, MatchRequest, Place, Suggestion, Urgency
from shared.contracts.directory import LocalisedText, MembershipStatus, ServiceOffer

TANGER = Place(city="tanger", region="tanger_tetouan_al_hoceima")


def candidate(
    org_id: str,
    *,
    status: MembershipStatus = MembershipStatus.ACTIVE,
    org_city: str = "rabat",
    service_id: str = "service",
    **offer: Any,
) -> Candidate:
    fields: dict[str, Any] = {"category": "legal_aid", "languages": ["fra"], "national": True}
    fields.update(offer)
    return Candidate(
        org_id=org_id,
        org_name=LocalisedText(fr=org_id.title()),
        org_city=org_city,
        org_status=status,
        service=ServiceOffer.model_validate({"service_id": service_id, **fields}),
    )


def request(**fields: Any) -> MatchRequest:
    return MatchRequest.model_validate({"category": "legal_aid", "city": "tanger", **fields})


def rank(
    candidates: list[Candidate],
    *,
    place: Place | None = TANGER,
    sender_org: str | None = "sender",
    response_time: matching.ResponseTimePoints | None = None,
    **asked: Any,
) -> list[Suggestion]:
    return matching.rank(
        request(**asked),
        candidates,
        place=place,
        sender_org=sender_org,
        response_time=response_time,
    )


def order(suggestions: list[Suggestion]) -> list[str]:
    return [s.org_id for s in suggestions]


def codes(suggestion: Suggestion) -> list[str]:
    return [reason.code for reason in suggestion.reasons]


def excluded(one: Candidate, *, place: Place | None = TANGER, **asked: Any) -> str | None:
    why = matching.why_excluded(request(**asked), one, place=place, sender_org="sender")
    return None if why is None else why.code


class TestPlace:
    def test_same_city_beats_same_region_beats_national(self) -> None:
        suggestions = rank(
            [
                candidate("national", national=True),
                candidate("region", national=False, regions=["tanger_tetouan_al_hoceima"]),
                candidate("city", national=False, cities=["tanger"]),
            ]
        )
        assert order(suggestions) == ["city", "region", "national"]
        assert [s.reasons[0] for s in suggestions] == [
            matching.SameCity(city="tanger"),
            matching.SameRegion(region="tanger_tetouan_al_hoceima"),
            matching.National(),
        ]

    def test_a_service_covering_neither_city_region_nor_country_is_not_suggested(self) -> None:
        elsewhere = candidate("oujda_only", national=False, cities=["oujda"], regions=["oriental"])
        assert rank([elsewhere]) == []
        assert excluded(elsewhere) == "outside_area"

    def test_another_city_of_the_same_region_is_not_the_persons_city(self) -> None:
        # The service says where it is offered: Tétouan is not Tanger, even in the same region.
        assert excluded(candidate("tetouan", national=False, cities=["tetouan"])) == "outside_area"

    def test_a_service_naming_no_area_is_offered_where_its_organisation_is(self) -> None:
        here = candidate("here", national=False, org_city="tanger")
        there = candidate("there", national=False, org_city="oujda")
        suggestions = rank([here, there])
        assert order(suggestions) == ["here"]
        assert suggestions[0].reasons[0] == matching.SameCity(city="tanger")

    def test_without_a_city_every_area_is_considered_and_none_scores(self) -> None:
        suggestions = rank(
            [candidate("oujda_only", national=False, cities=["oujda"])], place=None, city=None
        )
        assert order(suggestions) == ["oujda_only"]
        assert not {"same_city", "same_region", "national"} & set(codes(suggestions[0]))


class TestLanguages:
    def test_a_common_language_beats_none(self) -> None:
        suggestions = rank(
            [candidate("french_only", languages=["fra"]), candidate("wolof", languages=["wol"])],
            languages=["wol"],
        )
        assert order(suggestions) == ["wolof", "french_only"]
        assert matching.LanguageMatch(languages=["wol"]) in suggestions[0].reasons
        assert matching.NoCommonLanguage() in suggestions[1].reasons

    def test_the_common_languages_are_named_in_the_persons_order(self) -> None:
        [one] = rank([candidate("many", languages=["fra", "bam", "wol"])], languages=["wol", "bam"])
        assert matching.LanguageMatch(languages=["wol", "bam"]) in one.reasons

    def test_a_service_listing_no_language_is_flagged_as_unknown(self) -> None:
        [one] = rank([candidate("silent", languages=[])], languages=["wol"])
        assert matching.LanguagesUnknown() in one.reasons

    def test_no_language_asked_means_no_language_reason(self) -> None:
        [one] = rank([candidate("any")])
        assert not {"language_match", "no_common_language", "languages_unknown"} & set(codes(one))

    def test_a_common_language_outweighs_one_step_of_distance_but_not_two(self) -> None:
        suggestions = rank(
            [
                candidate("city_french", national=False, cities=["tanger"], languages=["fra"]),
                candidate(
                    "region_wolof",
                    national=False,
                    regions=["tanger_tetouan_al_hoceima"],
                    languages=["wol"],
                ),
                candidate("national_wolof", national=True, languages=["wol"]),
            ],
            languages=["wol"],
        )
        assert order(suggestions) == ["region_wolof", "city_french", "national_wolof"]


class TestCapacity:
    def test_open_beats_waitlist(self) -> None:
        suggestions = rank(
            [candidate("a_waitlist", capacity="waitlist"), candidate("b_open", capacity="open")]
        )
        assert order(suggestions) == ["b_open", "a_waitlist"]
        assert matching.CapacityOpen() in suggestions[0].reasons
        assert matching.CapacityWaitlist() in suggestions[1].reasons

    def test_a_closed_service_is_not_suggested(self) -> None:
        closed = candidate("closed", capacity="closed")
        assert rank([closed]) == []
        assert excluded(closed) == "capacity_closed"

    @pytest.mark.parametrize(
        ("urgency", "first"),
        [
            (Urgency.ROUTINE, "a_city_waitlist"),
            (Urgency.PRIORITY, "b_region_open"),
            (Urgency.EMERGENCY, "b_region_open"),
        ],
    )
    def test_the_more_urgent_the_less_a_waitlist_is_worth(
        self, urgency: Urgency, first: str
    ) -> None:
        suggestions = rank(
            [
                candidate(
                    "a_city_waitlist", national=False, cities=["tanger"], capacity="waitlist"
                ),
                candidate("b_region_open", national=False, regions=["tanger_tetouan_al_hoceima"]),
            ],
            urgency=urgency,
        )
        assert order(suggestions)[0] == first


class TestEligibility:
    def test_a_service_for_women_is_not_suggested_for_a_man(self) -> None:
        for_women = candidate("for_women", eligibility={"sex": "female"})
        assert excluded(for_women, sex="male") == "sex_not_served"
        assert order(rank([for_women], sex="female")) == ["for_women"]

    def test_an_age_outside_the_range_excludes_and_the_bounds_are_inclusive(self) -> None:
        minors = candidate("minors", eligibility={"min_age": 0, "max_age": 17})
        assert excluded(minors, age=18) == "age_outside_range"
        assert excluded(minors, age=17) is None
        why = matching.why_excluded(request(age=30), minors, place=TANGER, sender_org=None)
        assert why == matching.AgeOutsideRange(min_age=0, max_age=17)

    def test_a_population_the_service_is_not_for_excludes(self) -> None:
        shelter = candidate("shelter", eligibility={"populations": ["women", "children"]})
        assert excluded(shelter, populations=["asylum_seekers"]) == "population_not_served"
        assert excluded(shelter, populations=["asylum_seekers", "women"]) is None

    def test_a_service_for_everyone_serves_every_population(self) -> None:
        anyone = candidate("anyone", eligibility={"populations": ["everyone"]})
        [one] = rank([anyone], populations=["refugees"])
        assert not {"eligible_population", "check_population"} & set(codes(one))

    def test_a_service_meant_for_the_persons_population_ranks_above_a_general_one(self) -> None:
        suggestions = rank(
            [
                candidate("a_general"),
                candidate("b_gbv", eligibility={"populations": ["gbv_survivors"]}),
            ],
            populations=["gbv_survivors", "women"],
        )
        assert order(suggestions) == ["b_gbv", "a_general"]
        assert matching.EligiblePopulation(populations=["gbv_survivors"]) in suggestions[0].reasons

    def test_what_the_sender_did_not_say_is_kept_and_flagged_for_checking(self) -> None:
        restricted = candidate(
            "restricted",
            eligibility={"min_age": 18, "sex": "female", "populations": ["pregnant_women"]},
        )
        [one] = rank([restricted])
        assert matching.CheckAge(min_age=18, max_age=None) in one.reasons
        assert matching.CheckSex(sex="female") in one.reasons
        assert matching.CheckPopulation(populations=["pregnant_women"]) in one.reasons

    def test_what_the_sender_said_needs_no_check(self) -> None:
        restricted = candidate(
            "restricted",
            eligibility={"min_age": 18, "sex": "female", "populations": ["pregnant_women"]},
        )
        [one] = rank([restricted], age=25, sex="female", populations=["pregnant_women"])
        assert not {"check_age", "check_sex", "check_population"} & set(codes(one))


class TestWhoIsNeverSuggested:
    def test_the_senders_own_organisation_is_not_suggested(self) -> None:
        assert order(rank([candidate("sender"), candidate("other")])) == ["other"]
        assert excluded(candidate("sender")) == "own_organisation"

    @pytest.mark.parametrize(
        "status",
        [MembershipStatus.APPLICANT, MembershipStatus.SUSPENDED, MembershipStatus.LEFT],
    )
    def test_an_organisation_that_is_not_active_is_not_suggested(
        self, status: MembershipStatus
    ) -> None:
        assert rank([candidate("inactive", status=status)]) == []
        assert excluded(candidate("inactive", status=status)) == "organisation_not_active"

    def test_a_service_of_another_category_or_taking_no_referrals_is_not_suggested(self) -> None:
        assert excluded(candidate("health", category="primary_health")) == "other_category"
        assert excluded(candidate("walk_in", takes_referrals=False)) == "not_taking_referrals"


class TestScoreAndOrder:
    def test_the_score_is_the_sum_of_the_documented_points(self) -> None:
        [one] = rank(
            [candidate("best", national=False, cities=["tanger"], languages=["wol"])],
            languages=["wol"],
        )
        assert one.score == 30 + 15 + 20
        assert codes(one) == ["same_city", "language_match", "capacity_open"]

    def test_ties_go_to_the_organisation_id_then_the_service_id(self) -> None:
        tied = [
            candidate("zeta"),
            candidate("alpha", service_id="second"),
            candidate("alpha", service_id="first"),
            candidate("mu"),
        ]
        suggestions = rank(tied)
        assert [(s.org_id, s.service.service_id) for s in suggestions] == [
            ("alpha", "first"),
            ("alpha", "second"),
            ("mu", "service"),
            ("zeta", "service"),
        ]
        assert order(rank(list(reversed(tied)))) == order(suggestions)

    def test_response_times_count_for_nothing_until_measured(self) -> None:
        [one] = rank([candidate("any")])
        assert "response_time" not in codes(one)

    def test_the_response_time_hook_adds_its_points_and_says_so(self) -> None:
        def faster_for_mu(org_id: str) -> int:
            return 7 if org_id == "mu" else 0

        suggestions = rank([candidate("alpha"), candidate("mu")], response_time=faster_for_mu)
        assert order(suggestions) == ["mu", "alpha"]
        assert matching.ResponseTime(points=7) in suggestions[0].reasons
        assert suggestions[0].score == suggestions[1].score + 7

    def test_reasons_serialise_as_flat_codes_with_their_parameters(self) -> None:
        [one] = rank(
            [candidate("city", national=False, cities=["tanger"], languages=["wol"])],
            languages=["wol"],
        )
        assert one.model_dump(mode="json")["reasons"] == [
            {"code": "same_city", "city": "tanger"},
            {"code": "language_match", "languages": ["wol"]},
            {"code": "capacity_open"},
        ]


class TestRequest:
    def test_an_unknown_field_is_refused_rather_than_ignored(self) -> None:
        with pytest.raises(ValueError, match="population"):
            MatchRequest.model_validate({"category": "legal_aid", "population": ["women"]})

    def test_only_the_category_is_required(self) -> None:
        asked = MatchRequest.model_validate({"category": "legal_aid"})
        assert (asked.city, asked.urgency, asked.limit) == (None, Urgency.ROUTINE, 20)
