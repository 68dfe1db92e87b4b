"""The rules of the operator's tools that need no server: what may be done with a dead letter
in each state, the reason a discard needs, a state row from an older DEADLETTER stream, what
a listing shows (never content), where a replay starts, and times as Morocco reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from deploy import cli_deadletters
from deploy.node_client import local_time
from shared.bus import DeadLetter
from shared.deadletters import (
    Handling,
    State,
    check_discardable,
    check_redeliverable,
    checked_note,
    handling_of,
    view,
)
from shared.errors import Conflict, Invalid
from shared.outbox_replay import MOROCCO, Since, chosen_services

LETTER = DeadLetter(
    id=7,
    stream="INBOX",
    stream_seq=42,
    consumer="referrals",
    why="terminated",
    reason="PermanentFailure: amal is not the other party of 1b0c",
    deliveries=1,
    subject="relais.net.amal.sanad.referral.transitioned",
    event_type="relais.referral.transitioned.v1",
    event_id="0190f1de-0000-7000-8000-000000000001",
    at="2026-12-02T14:20:03.123456789Z",
)


@pytest.fixture(autouse=True)
def in_english(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line speaks the operator's language; these tests read its English."""
    monkeypatch.setenv("RELAIS_LANG", "en")


def row(**changes: Any) -> dict[str, Any]:
    base = {
        "stream": "INBOX",
        "stream_seq": 42,
        "consumer": "referrals",
        "state": "discarded",
        "note": "forged",
        "handled_by": "user:admin",
        "handled_at": datetime(2026, 12, 2, 15, 0, tzinfo=UTC),
        "attempts": 1,
        "last_error": None,
    }
    return base | changes


class TestWhatMayBeDone:
    def test_an_open_letter_may_be_redelivered_or_discarded(self) -> None:
        check_redeliverable(Handling())
        check_discardable(Handling(attempts=3, last_error="failed again"))

    @pytest.mark.parametrize("state", [State.REDELIVERED, State.DISCARDED])
    def test_a_handled_letter_is_handled_for_good(self, state: State) -> None:
        with pytest.raises(Conflict, match=state.value):
            check_redeliverable(Handling(state=state))
        with pytest.raises(Conflict, match=state.value):
            check_discardable(Handling(state=state))


class TestTheReasonForDiscarding:
    @pytest.mark.parametrize("note", [None, "", "   \n "])
    def test_is_required(self, note: str | None) -> None:
        with pytest.raises(Invalid) as refused:
            checked_note(note)
        assert refused.value.field == "reason"

    def test_is_one_line_of_at_most_500_characters(self) -> None:
        assert checked_note("  forged\nby   sanad ") == "forged by sanad"
        assert len(checked_note("x" * 500)) == 500
        with pytest.raises(Invalid):
            checked_note("x" * 501)


class TestStateRows:
    def test_a_row_about_the_letter_gives_its_handling(self) -> None:
        handling = handling_of(LETTER, row())
        assert handling.state is State.DISCARDED and handling.note == "forged"

    @pytest.mark.parametrize(
        "other", [{"stream_seq": 41}, {"stream": "LOCAL"}, {"consumer": "directory"}]
    )
    def test_a_row_about_another_message_is_from_an_older_stream_and_ignored(
        self, other: dict[str, Any]
    ) -> None:
        assert handling_of(LETTER, row(**other)) == Handling()

    def test_no_row_is_an_open_letter(self) -> None:
        assert handling_of(LETTER, None).state is State.OPEN


class TestWhatIsShown:
    def test_a_letter_shows_ids_types_and_reasons_and_what_was_done(self) -> None:
        shown = view(LETTER, handling_of(LETTER, row()))
        assert shown["id"] == 7 and shown["state"] == "discarded"
        assert shown["handled_at"] == "2026-12-02T15:00:00+00:00"
        assert set(shown) == {
            "id", "at", "stream", "stream_seq", "consumer", "why", "reason", "deliveries",
            "subject", "event_type", "event_id", "state", "note", "handled_by", "handled_at",
            "attempts", "last_error",
        }  # fmt: skip

    def test_the_command_line_lists_a_letter_on_one_line_in_moroccan_time(self) -> None:
        lines = cli_deadletters.rows([view(LETTER, Handling())])
        assert "Africa/Casablanca" in lines[0]
        number, day, time, consumer, where, kind, state, *why = lines[1].split()
        assert (number, day, time) == ("7", "2026-12-02", "15:20:03")  # UTC+1 in December
        assert (consumer, where, kind, state) == (
            "referrals",
            "INBOX#42",
            "relais.referral.transitioned.v1",
            "open",
        )
        assert " ".join(why).startswith("refused: PermanentFailure")

    def test_a_letter_that_ran_out_of_deliveries_says_how_many(self) -> None:
        tired = view(
            DeadLetter(**{**LETTER.__dict__, "why": "max_deliveries", "deliveries": 6}), Handling()
        )
        assert cli_deadletters.why(tired) == "failed 6 times"

    def test_details_name_the_last_failure_and_who_handled_it(self) -> None:
        shown = view(LETTER, handling_of(LETTER, row(last_error="Forbidden: no")))
        text = "\n".join(cli_deadletters.details(shown))
        assert "last failure" in text and "Forbidden: no" in text
        assert "user:admin" in text and "2026-12-02 16:00:00" in text
        assert "reason for discarding  forged" in text


class TestWhereAReplayStarts:
    def test_a_number_is_an_outbox_sequence(self) -> None:
        assert Since.parse(" 1234 ") == Since(seq=1234)

    def test_a_time_with_an_offset_is_kept(self) -> None:
        since = Since.parse("2026-12-01T08:00:00+00:00")
        assert since.time == datetime(2026, 12, 1, 8, tzinfo=UTC)

    def test_a_time_without_offset_is_moroccan(self) -> None:
        since = Since.parse("2026-12-01T09:00")
        assert since.time is not None and since.time.tzinfo is MOROCCO
        assert since.time.astimezone(UTC) == datetime(2026, 12, 1, 8, tzinfo=UTC)

    @pytest.mark.parametrize("text", ["yesterday", "-5", "", "12:00 tomorrow"])
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(Invalid) as refused:
            Since.parse(text)
        assert refused.value.field == "since"

    def test_a_sequence_needs_its_service_a_time_covers_every_one(self) -> None:
        services = ["auth", "directory", "referrals"]
        assert chosen_services(services, None, Since(time=datetime.now(UTC))) == services
        assert chosen_services(services, "referrals", Since(seq=3)) == ["referrals"]
        with pytest.raises(Invalid, match="name the service"):
            chosen_services(services, None, Since(seq=3))
        with pytest.raises(Invalid, match="no service mail"):
            chosen_services(services, "mail", Since(seq=3))


class TestMoroccanTime:
    def test_summer_and_ramadan_offsets_come_from_the_time_zone_database(self) -> None:
        assert local_time("2026-12-02T14:20:03Z") == "2026-12-02 15:20:03"
        # Morocco leaves UTC+1 for UTC+0 during Ramadan (2026: about 15 February to 22 March).
        assert local_time("2026-03-01T12:00:00+00:00") == "2026-03-01 12:00:00"

    def test_nothing_or_nonsense_is_shown_as_it_came(self) -> None:
        assert local_time(None) == "-"
        assert local_time("soon") == "soon"
