"""Directory rules: versions move one step at a time; replicas never go back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.directory import domain
from shared.contracts.directory import (
    Capacity,
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
    ServiceOffer,
)
from shared.errors import Conflict, Forbidden, Invalid, InvalidTransition, NotFound


def record(version: int) -> OrganisationPublished:
    return OrganisationPublished(
        org_id="sanad",
        version=version,
        name=LocalisedText(fr="Sanad"),
        kind=OrganisationKind.NGO,
        status=MembershipStatus.ACTIVE,
        city="rabat",
    )


class TestCoordinatorEdits:
    def test_a_newcomer_starts_as_an_applicant(self) -> None:
        applicant = record(1).model_copy(update={"status": MembershipStatus.APPLICANT})
        assert domain.coordinator_edit(None, applicant).status is MembershipStatus.APPLICANT
        with pytest.raises(InvalidTransition) as refused:
            domain.coordinator_edit(None, record(1))
        assert refused.value.field == "status"

    def test_an_edit_cannot_skip_the_membership_lifecycle(self) -> None:
        suspended = record(2).model_copy(update={"status": MembershipStatus.SUSPENDED})
        with pytest.raises(InvalidTransition, match="membership"):
            domain.coordinator_edit(record(1), suspended)
        assert domain.coordinator_edit(record(1), record(2)).version == 2


class TestPublishing:
    def test_a_new_organisation_starts_at_version_one(self) -> None:
        assert domain.next_record(None, record(1)).version == 1

    def test_a_stale_version_is_refused_with_a_conflict(self) -> None:
        with pytest.raises(Conflict, match="at version 3"):
            domain.next_record(record(3), record(3))

    def test_a_skipped_version_is_refused(self) -> None:
        with pytest.raises(Conflict, match="send version 2"):
            domain.next_record(record(1), record(5))


class TestReplica:
    def test_a_replica_applies_only_newer_records(self) -> None:
        assert domain.should_apply(None, record(1))
        assert domain.should_apply(1, record(2))
        assert not domain.should_apply(2, record(2))
        assert not domain.should_apply(3, record(2))


class TestMembership:
    def test_an_applicant_is_admitted_as_a_new_version(self) -> None:
        admitted = domain.change_membership(
            record(1).model_copy(update={"status": MembershipStatus.APPLICANT}),
            domain.Membership.ADMIT,
            None,
        )
        assert (admitted.status, admitted.version) == (MembershipStatus.ACTIVE, 2)

    def test_a_suspended_organisation_is_reinstated_and_can_leave(self) -> None:
        suspended = domain.change_membership(record(1), domain.Membership.SUSPEND, "no answer")
        assert suspended.status_reason == "no answer"
        back = domain.change_membership(suspended, domain.Membership.REINSTATE, None)
        gone = domain.change_membership(back, domain.Membership.LEAVE, None)
        assert (back.status, gone.status, gone.version) == ("active", "left", 4)

    def test_saying_no_needs_a_reason(self) -> None:
        applicant = record(1).model_copy(update={"status": MembershipStatus.APPLICANT})
        with pytest.raises(Invalid) as refused:
            domain.change_membership(applicant, domain.Membership.REJECT, "  ")
        assert refused.value.field == "reason"

    @pytest.mark.parametrize(
        ("status", "action"),
        [
            (MembershipStatus.ACTIVE, domain.Membership.ADMIT),
            (MembershipStatus.LEFT, domain.Membership.REINSTATE),
            (MembershipStatus.APPLICANT, domain.Membership.SUSPEND),
            (MembershipStatus.LEFT, domain.Membership.LEAVE),
        ],
    )
    def test_a_move_outside_the_lifecycle_is_refused(
        self, status: MembershipStatus, action: domain.Membership
    ) -> None:
        with pytest.raises(InvalidTransition):
            domain.change_membership(record(1).model_copy(update={"status": status}), action, "x")


class TestSearchText:
    def test_accents_and_case_are_ignored(self) -> None:
        assert domain.fold("Fès, TÉTOUAN et Laâyoune") == "fes, tetouan et laayoune"

    def test_arabic_vowel_marks_and_letter_variants_are_ignored(self) -> None:
        assert domain.fold("الْمُسَاعَدَة القانونيّة") == domain.fold("المساعده القانونية")
        assert domain.fold("إسعاف") == domain.fold("اسعاف")


def test_the_round_trip_of_a_probe_is_measured_in_milliseconds() -> None:
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.round_trip("p", sent, sent + timedelta(milliseconds=250)).round_trip_ms == 250


def test_an_answer_before_its_probe_is_invalid() -> None:
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(Invalid):
        domain.round_trip("p", sent, sent - timedelta(seconds=1))


class TestReferenceCodes:
    def with_service(self, **fields: object) -> OrganisationPublished:
        offer = {"service_id": "s1", "category": "legal_aid", **fields}
        return record(2).model_copy(update={"services": [ServiceOffer.model_validate(offer)]})

    def test_an_unknown_category_is_refused_naming_the_field(self) -> None:
        with pytest.raises(Invalid) as refused:
            domain.next_record(record(1), self.with_service(category="astrology"))
        assert refused.value.field == "services.0.category"

    def test_an_unknown_city_suggests_the_close_one(self) -> None:
        with pytest.raises(Invalid, match="did you mean 'tanger'") as refused:
            domain.next_record(record(1), self.with_service(cities=["tangier"]))
        assert refused.value.field == "services.0.cities.0"

    def test_languages_are_stored_as_iso_639_3_codes(self) -> None:
        accepted = domain.next_record(record(1), self.with_service(languages=["fr", "wol", "fra"]))
        assert accepted.services[0].languages == ["fra", "wol"]

    def test_two_services_with_one_id_are_refused(self) -> None:
        offer = ServiceOffer(service_id="s1", category="legal_aid")
        twice = record(2).model_copy(update={"services": [offer, offer]})
        with pytest.raises(Invalid, match="same service_id"):
            domain.next_record(record(1), twice)


class TestOwnChanges:
    def test_an_organisation_may_change_its_services_but_not_its_membership(self) -> None:
        current = record(3)
        edited = current.model_copy(update={"version": 4, "website": "https://sanad.example"})
        assert domain.own_change(current, edited).website == "https://sanad.example"
        promoted = edited.model_copy(update={"kind": OrganisationKind.INTERNATIONAL})
        with pytest.raises(Forbidden) as refused:
            domain.own_change(current, promoted)
        assert refused.value.field == "kind"

    def test_a_suspended_organisation_cannot_change_its_record(self) -> None:
        current = record(3).model_copy(update={"status": MembershipStatus.SUSPENDED})
        with pytest.raises(Forbidden, match="suspended"):
            domain.own_change(current, current.model_copy(update={"version": 4}))

    def test_a_capacity_change_is_a_new_version_with_its_time(self) -> None:
        offer = ServiceOffer(service_id="s1", category="legal_aid")
        current = record(3).model_copy(update={"services": [offer]})
        now = datetime(2026, 11, 29, tzinfo=UTC)
        changed = domain.with_capacity(current, "s1", Capacity.WAITLIST, now)
        assert (changed.version, changed.services[0].capacity) == (4, Capacity.WAITLIST)
        assert changed.services[0].capacity_set_at == now
        with pytest.raises(NotFound):
            domain.with_capacity(current, "s2", Capacity.OPEN, now)
