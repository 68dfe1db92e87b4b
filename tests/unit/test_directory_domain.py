"""Directory rules: versions move one step at a time; replicas never go back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.directory import domain
from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
)
from shared.errors import Conflict, Invalid


def record(version: int) -> OrganisationPublished:
    return OrganisationPublished(
        org_id="sanad",
        version=version,
        name=LocalisedText(fr="Sanad"),
        kind=OrganisationKind.NGO,
        status=MembershipStatus.ACTIVE,
        city="Rabat",
    )


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


def test_the_round_trip_of_a_probe_is_measured_in_milliseconds() -> None:
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.round_trip("p", sent, sent + timedelta(milliseconds=250)).round_trip_ms == 250


def test_an_answer_before_its_probe_is_invalid() -> None:
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(Invalid):
        domain.round_trip("p", sent, sent - timedelta(seconds=1))
