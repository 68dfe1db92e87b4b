"""The referral page's words and actions: true to the status, the step forward first."""

from services.dashboard import labels, referral_pages
from shared.contracts.referrals import CHANGES


class TestActionOrder:
    def test_accepting_comes_before_declining(self) -> None:
        forward, ending = referral_pages.in_order(["decline", "accept"])
        assert forward == ["accept"]
        assert ending == ["decline"]

    def test_withdrawing_is_never_offered_as_a_step_forward(self) -> None:
        forward, ending = referral_pages.in_order(["withdraw", "revoke-consent"])
        assert forward == []
        assert ending == ["withdraw", "revoke-consent"]

    def test_completing_comes_before_closing_unresolved(self) -> None:
        forward, ending = referral_pages.in_order(["close", "complete"])
        assert (forward, ending) == (["complete"], ["close"])


class TestDoneNotice:
    def test_a_referral_only_sent_is_not_said_to_be_received(self) -> None:
        said = referral_pages.done_notice("sent", "fr")
        assert "informée" not in said
        assert "« Reçue »" in said

    def test_the_arabic_notice_names_the_arabic_status(self) -> None:
        said = referral_pages.done_notice("sent", "ar")
        assert "مُستلمة" in said

    def test_an_answer_that_went_through_says_the_other_side_is_told(self) -> None:
        assert referral_pages.done_notice("accepted", "en") == (
            "Done: the other organisation is told."
        )


def test_every_step_a_history_can_hold_has_its_words_on_the_page() -> None:
    only_in_events = {"messaged", "consent_expired"}  # a history never records these
    worded = set(labels.CHANGE) | set(referral_pages.LINKED_CHANGE)
    assert set(CHANGES) - only_in_events <= worded
