"""A person may read times in a zone of their own: the zone is checked against the IANA
database, the pages of one request use it without touching another's, and the mails and SMS
name the zone beside each time; machine fields stay UTC. Fixed clocks on both sides of
Casablanca's change to UTC+0 for Ramadan (02:00 UTC on 15 February 2026)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from services.dashboard import labels, notification_pages
from services.dashboard.rendering import TEMPLATES
from services.notifications.api import Preferences
from services.notifications.domain import Facts, Kind
from services.notifications.messages import Writer
from shared import i18n, zones

BEFORE = datetime(2026, 2, 14, 23, 30, tzinfo=UTC)  # 00:30 on the 15th in Casablanca (UTC+1)
AFTER = datetime(2026, 2, 15, 23, 30, tzinfo=UTC)  # 23:30 on the 15th in Casablanca (UTC+0)


@pytest.fixture(autouse=True)
def casablanca() -> Iterator[None]:
    labels.use_zone("Africa/Casablanca")
    labels.reading_in(None)
    yield
    labels.use_zone("Africa/Casablanca")
    labels.reading_in(None)


class TestAZone:
    @pytest.mark.parametrize("name", ["Africa/Casablanca", "Europe/Paris", "UTC", "Etc/GMT-1"])
    def test_a_zone_of_the_iana_database_is_one(self, name: str) -> None:
        assert zones.is_zone(name)

    @pytest.mark.parametrize(
        "name",
        [
            *("Morocco/Rabat", "europe/paris", "UTC+1", "../etc/passwd", "/etc/localtime", ""),
            *("localtime", "right/UTC", "Africa", "Africa/"),
        ],
    )
    def test_a_name_the_database_does_not_list_is_not(self, name: str) -> None:
        assert not zones.is_zone(name)

    def test_a_name_that_is_no_zone_falls_back_to_the_nodes(self) -> None:
        assert zones.zone_or("Mars/Olympus", "Africa/Casablanca").key == "Africa/Casablanca"
        assert zones.zone_or("Europe/Paris", "Africa/Casablanca").key == "Europe/Paris"

    def test_morocco_is_offered_first_and_a_zone_chosen_elsewhere_is_kept(self) -> None:
        offered = dict(zones.offered("Asia/Tokyo", "fr"))
        assert next(iter(offered)) == "Africa/Casablanca"
        assert offered["Africa/Casablanca"] == "heure du Maroc — Africa/Casablanca"
        assert offered["Asia/Tokyo"].endswith("— Asia/Tokyo")
        assert "Mars/Olympus" not in dict(zones.offered("Mars/Olympus", "fr"))

    def test_the_offered_places_are_in_the_readers_language(self) -> None:
        assert dict(zones.offered(None, "ar"))["Africa/Casablanca"].startswith("بتوقيت المغرب")
        assert dict(zones.offered(None, "en"))["Europe/Paris"] == "France Time — Europe/Paris"


class TestTheReadersZoneOnThePages:
    def test_a_reader_in_paris_reads_paris_time_named(self) -> None:
        labels.reading_in("Europe/Paris")
        assert labels.moment("2026-05-01T09:30:00Z", "fr") == "01/05/2026 11:30"
        assert labels.zone_note("fr") == "heure de Europe/Paris"

    def test_no_choice_or_a_bad_one_reads_the_nodes_zone(self) -> None:
        for chosen in (None, "Mars/Olympus"):
            labels.reading_in(chosen)
            assert labels.moment("2026-05-01T09:30:00Z", "fr") == "01/05/2026 10:30"
            assert labels.zone_note("fr") == "heure du Maroc"

    def test_the_node_zone_on_both_sides_of_ramadans_change(self) -> None:
        assert labels.moment(BEFORE.isoformat(), "fr") == "15/02/2026 00:30"
        assert labels.moment(AFTER.isoformat(), "fr") == "15/02/2026 23:30"

    def test_the_clock_of_a_deadline_is_in_the_readers_zone(self) -> None:
        labels.reading_in("Europe/London")
        summary = {"status": "sent", "acknowledge_by": "2026-05-01T09:30:00Z"}
        clock = labels.clock(summary, "en", now=datetime(2026, 5, 1, 6, tzinfo=UTC))
        assert clock is not None
        assert clock.due.startswith("5/1/26, 10:30")
        assert clock.due_iso == "2026-05-01T09:30:00+00:00"
        assert clock.zone == "Time in Europe/London"

    def test_two_pages_rendered_at_once_keep_their_own_readers_zone(self) -> None:
        async def page(zone: str | None) -> str:
            labels.reading_in(zone)
            await asyncio.sleep(0)  # the other page runs here
            return labels.moment("2026-05-01T09:30:00Z", "fr")

        async def both() -> list[str]:
            return list(await asyncio.gather(page("Europe/Paris"), page(None), page("UTC")))

        assert asyncio.run(both()) == [
            "01/05/2026 11:30",
            "01/05/2026 10:30",
            "01/05/2026 09:30",
        ]


def reminder(due_at: datetime) -> Facts:
    return Facts(
        referral_id="0190c2f0-0000-7000-8000-000000000001",
        category="shelter",
        urgency="priority",
        deadline="acknowledge",
        due_at=due_at,
    )


class TestMailsAndSms:
    def writer(self, lang: str, zone: str = "Africa/Casablanca") -> Writer:
        return Writer(lang, base_url="https://sanad.example", timezone=zone)

    def test_a_mails_deadline_is_moroccan_time_named_on_both_sides_of_the_change(self) -> None:
        writer = self.writer("fr")
        assert writer.when(BEFORE) == "15 févr. 2026, 00:30:00 (heure du Maroc)"
        assert writer.when(AFTER) == "15 févr. 2026, 23:30:00 (heure du Maroc)"

    def test_the_sms_carries_the_local_time_and_its_zone(self) -> None:
        writer = self.writer("fr")
        facts = reminder(BEFORE)
        rendered = writer.single(Kind.DEADLINE_REMINDER, facts)
        sms = writer.sms(rendered, [writer.item(Kind.DEADLINE_REMINDER, facts)])
        assert "15 févr. 2026, 00:30:00 (heure du Maroc)" in sms
        assert "23:30" not in sms  # not the UTC time

    def test_a_readers_own_zone_is_used_and_named_in_their_language(self) -> None:
        writer = self.writer("en", "Europe/Paris")
        rendered = writer.single(Kind.DEADLINE_REMINDER, reminder(BEFORE))
        assert "Feb 15, 2026, 12:30:00\u202fAM (Time in Europe/Paris)" in rendered.text
        arabic = self.writer("ar").when(BEFORE)
        assert arabic.endswith("(بتوقيت المغرب)")

    def test_a_webhooks_machine_field_stays_utc(self) -> None:
        morocco = timezone(timedelta(hours=1))
        facts = reminder(datetime(2026, 5, 1, 10, 30, tzinfo=morocco))
        assert facts.outside_view()["due_at"] == "2026-05-01T09:30:00+00:00"


class TestThePreferencesZone:
    def test_an_iana_zone_is_accepted_and_none_means_the_nodes(self) -> None:
        assert Preferences(timezone="Europe/Paris").timezone == "Europe/Paris"
        assert Preferences().timezone is None

    @pytest.mark.parametrize("zone", ["Morocco/Rabat", "UTC+1", "../../etc/passwd"])
    def test_a_name_that_is_no_zone_is_refused_naming_the_field(self, zone: str) -> None:
        with pytest.raises(ValidationError) as refused:
            Preferences(timezone=zone)
        (error,) = refused.value.errors()
        assert error["loc"] == ("timezone",)
        assert "Africa/Casablanca" in error["msg"]


def test_a_suggestions_description_in_another_language_is_marked_on_both_pages() -> None:
    """The wizard and "send to another organisation" show a suggestion with one macro."""
    env = i18n.environment(TEMPLATES, "ar")
    page = env.from_string(
        '{% from "_macros.html" import suggestion %}<ul>{{ suggestion(s, 1) }}</ul>'
    )
    suggestion = {
        "org_id": "sanad",
        "name": "سند",
        "city": "وجدة",
        "description": labels.said({"fr": "Hébergement d'urgence."}, "ar"),
        "reasons": ["نفس المدينة"],
    }
    html = page.render(s=suggestion)
    assert '<span lang="fr" dir="ltr">Hébergement d&#39;urgence.</span>' in html
    for template in ("wizard.html", "send_again.html"):
        source = (TEMPLATES / template).read_text()
        assert "suggestion(s, loop.index" in source
        assert '<li class="suggestion">' not in source  # no copy of the macro


class TestThePreferencesChoice:
    def test_the_nodes_zone_comes_first_as_no_choice_and_only_once(self) -> None:
        offered = notification_pages._zones_offered(None, "fr")
        assert offered[0] == ("", "Le fuseau du nœud (heure du Maroc)")
        assert "Africa/Casablanca" not in dict(offered)
        assert "Europe/Paris" in dict(offered)

    def test_the_nodes_zone_chosen_by_name_is_kept_so_the_page_shows_it(self) -> None:
        offered = dict(notification_pages._zones_offered("Africa/Casablanca", "ar"))
        assert offered[""] == "المنطقة الزمنية للعقدة (بتوقيت المغرب)"
        assert "Africa/Casablanca" in offered
