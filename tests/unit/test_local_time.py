"""Every time a person reads on the pages is in the node's zone: Africa/Casablanca by default,
UTC+1 most of the year and UTC+0 during Ramadan; the machine form stays ISO with its offset,
and the days typed in the audit search are the reader's days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from services.dashboard import labels
from services.dashboard.audit_pages import api_filters
from shared.settings import NodeSettings

# 1 March 2026 falls in Ramadan (Morocco on UTC+0); 1 May 2026 does not (UTC+1).
RAMADAN = "2026-03-01T09:30:00Z"
NORMAL = "2026-05-01T09:30:00Z"


@pytest.fixture(autouse=True)
def casablanca() -> Iterator[None]:
    labels.use_zone("Africa/Casablanca")
    yield
    labels.use_zone("Africa/Casablanca")


def referral(acknowledge_by: str) -> dict[str, str]:
    return {"status": "sent", "acknowledge_by": acknowledge_by}


class TestTheClockOfADeadline:
    def test_out_of_ramadan_a_deadline_reads_an_hour_after_utc(self) -> None:
        clock = labels.clock(referral(NORMAL), "fr", now=datetime(2026, 5, 1, 6, tzinfo=UTC))
        assert clock is not None
        assert clock.due == "01/05/2026 10:30"
        assert clock.due_iso == "2026-05-01T09:30:00+00:00"  # machine form: UTC, with offset
        assert clock.zone == "heure du Maroc"

    def test_during_ramadan_a_deadline_reads_as_utc(self) -> None:
        clock = labels.clock(referral(RAMADAN), "fr", now=datetime(2026, 3, 1, 6, tzinfo=UTC))
        assert clock is not None
        assert clock.due == "01/03/2026 09:30"

    def test_the_zone_is_named_in_the_readers_language(self) -> None:
        assert labels.zone_note("ar") == "بتوقيت المغرب"
        assert labels.zone_note("en") == "Moroccan time"


class TestAMoment:
    def test_a_moment_is_in_moroccan_time_on_both_sides_of_ramadan(self) -> None:
        assert labels.moment(NORMAL, "en").endswith("10:30\u202fAM")
        assert labels.moment(RAMADAN, "en").endswith("9:30\u202fAM")

    def test_late_in_the_evening_utc_is_already_tomorrow_in_morocco(self) -> None:
        assert labels.moment("2026-05-01T23:30:00Z", "fr") == "02/05/2026 00:30"

    def test_another_zone_set_for_the_node_is_used_and_named(self) -> None:
        labels.use_zone("Europe/Paris")
        assert labels.moment(NORMAL, "fr") == "01/05/2026 11:30"
        assert labels.zone_note("fr") == "heure de Europe/Paris"


class TestTheDaysOfTheAuditSearch:
    def test_a_day_out_of_ramadan_starts_at_midnight_moroccan_time(self) -> None:
        query, bad = api_filters({"from": "2026-05-01", "to": "2026-05-01"})
        assert not bad
        assert query["from"] == "2026-05-01T00:00:00+01:00"  # 23:00 UTC the day before
        assert query["to"] == "2026-05-02T00:00:00+01:00"  # "to" includes its day
        assert datetime.fromisoformat(query["from"]) == datetime(2026, 4, 30, 23, tzinfo=UTC)

    def test_a_day_in_ramadan_starts_at_midnight_utc(self) -> None:
        query, _ = api_filters({"from": "2026-03-01"})
        assert datetime.fromisoformat(query["from"]) == datetime(2026, 3, 1, tzinfo=UTC)

    def test_a_day_that_is_not_one_is_refused_beside_its_field(self) -> None:
        _, bad = api_filters({"from": "2026-13-01"})
        assert "from" in bad


class TestTheNodesZone:
    def settings(self, **extra: str) -> NodeSettings:
        return NodeSettings.model_validate(
            {
                "node_id": "sanad",
                "org": "sanad",
                "secret_key": "s" * 20,
                "nats_url": "nats://127.0.0.1:4222",
                "database_url": "postgresql://x",
                **extra,
            }
        )

    def test_morocco_by_default(self) -> None:
        assert self.settings().timezone == "Africa/Casablanca"

    def test_read_from_relais_timezone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RELAIS_TIMEZONE", "Europe/Madrid")
        assert self.settings().timezone == "Europe/Madrid"

    @pytest.mark.parametrize("zone", ["Morocco/Rabat", "UTC+1", "../etc/passwd", ""])
    def test_an_unknown_zone_stops_the_node_with_a_clear_error(self, zone: str) -> None:
        with pytest.raises(ValidationError, match="not a time zone of the IANA database"):
            self.settings(timezone=zone)


class TestTheWizardsConsentDay:
    def test_consent_until_a_day_lasts_to_that_days_end_in_morocco(self) -> None:
        until = labels.last_second(date(2026, 12, 31))
        assert until.isoformat() == "2026-12-31T23:59:59+01:00"
        assert labels.moment(until.isoformat(), "fr") == "31/12/2026 23:59"

    def test_in_ramadan_the_day_ends_at_midnight_utc(self) -> None:
        until = labels.last_second(date(2026, 3, 1))
        assert until.astimezone(UTC) == datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
