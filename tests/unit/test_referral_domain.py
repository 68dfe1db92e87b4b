"""The referral lifecycle's rules: who may do what, when, and how two nodes that learn of
crossing steps in different orders still end in the same state."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.referrals import domain
from services.referrals.domain import Action, Side, Step
from shared.contracts.referrals import DEFAULT_DEADLINES, LegalBasis, Status, Urgency
from shared.errors import Forbidden, Invalid, InvalidTransition

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


class TestLocalSteps:
    def test_the_recipient_walks_the_closed_loop(self) -> None:
        status = Status.RECEIVED
        for action in (Action.ACCEPT, Action.START):
            status = domain.local_move(status, Side.RECIPIENT, action, None)
        status = domain.local_move(status, Side.RECIPIENT, Action.COMPLETE, "service_provided")
        assert status is Status.COMPLETED

    def test_a_step_out_of_order_is_refused_naming_what_is_allowed(self) -> None:
        with pytest.raises(InvalidTransition) as refused:
            domain.local_move(Status.RECEIVED, Side.RECIPIENT, Action.COMPLETE, "service_provided")
        assert refused.value.allowed == ["accept", "decline"]

    def test_each_side_makes_only_its_own_steps(self) -> None:
        with pytest.raises(Forbidden):
            domain.local_move(Status.RECEIVED, Side.SENDER, Action.ACCEPT, None)
        with pytest.raises(Forbidden):
            domain.local_move(Status.RECEIVED, Side.RECIPIENT, Action.WITHDRAW, None)

    def test_a_decline_needs_a_reason(self) -> None:
        with pytest.raises(Invalid) as missing:
            domain.local_move(Status.RECEIVED, Side.RECIPIENT, Action.DECLINE, None)
        assert missing.value.field == "reason"

    def test_withdrawal_is_possible_until_the_referral_is_closed(self) -> None:
        for status in (Status.SENT, Status.RECEIVED, Status.ACCEPTED, Status.IN_PROGRESS):
            assert Action.WITHDRAW in domain.allowed_actions(status, Side.SENDER)
        for status in domain.TERMINAL:
            assert domain.allowed_actions(status, Side.SENDER) == []
            assert domain.allowed_actions(status, Side.RECIPIENT) == []

    def test_close_unresolved_only_once_accepted(self) -> None:
        assert Action.CLOSE not in domain.allowed_actions(Status.RECEIVED, Side.RECIPIENT)
        assert Action.CLOSE in domain.allowed_actions(Status.ACCEPTED, Side.RECIPIENT)
        assert Action.CLOSE in domain.allowed_actions(Status.IN_PROGRESS, Side.RECIPIENT)


def _run(steps: list[tuple[Side, Step]], maker: Side) -> Status:
    """The status a node ends with, given its own steps and the other side's, in order."""
    current = Step(Status.RECEIVED, T0, "amal")
    for side, step in steps:
        if side is maker or domain.remote_step_applies(current, step, side):
            current = step
    return current.status


class TestCrossingSteps:
    """Both nodes see the same steps, each its own first: they must agree."""

    @pytest.mark.parametrize(
        ("recipient_steps", "sender_step"),
        [
            (recipient, sender)
            for recipient in (
                [Status.ACCEPTED],
                [Status.ACCEPTED, Status.IN_PROGRESS],
                [Status.ACCEPTED, Status.IN_PROGRESS, Status.COMPLETED],
                [Status.DECLINED],
                [Status.ACCEPTED, Status.CLOSED_UNRESOLVED],
            )
            for sender in (Status.WITHDRAWN, Status.EXPIRED)
        ],
    )
    @pytest.mark.parametrize("sender_first", [True, False])
    def test_both_nodes_end_in_the_same_state(
        self, recipient_steps: list[Status], sender_step: Status, sender_first: bool
    ) -> None:
        minute = timedelta(minutes=1)
        start = T0 + (0 if sender_first else 5) * minute
        theirs = [
            (Side.RECIPIENT, Step(s, T0 + (i + 1) * minute, "amal"))
            for i, s in enumerate(recipient_steps)
        ]
        mine = [(Side.SENDER, Step(sender_step, start + minute / 2, "sanad"))]
        at_recipient = _run(theirs + mine, Side.RECIPIENT)
        at_sender = _run(mine + theirs, Side.SENDER)
        assert at_recipient == at_sender
        assert at_sender in domain.TERMINAL

    def test_the_earlier_closing_wins(self) -> None:
        completed = Step(Status.COMPLETED, T0, "amal")
        withdrawn = Step(Status.WITHDRAWN, T0 + timedelta(seconds=1), "sanad")
        assert not domain.remote_step_applies(completed, withdrawn, Side.SENDER)
        assert domain.remote_step_applies(withdrawn, completed, Side.RECIPIENT)

    def test_a_recipient_step_never_moves_a_referral_back(self) -> None:
        started = Step(Status.IN_PROGRESS, T0, "amal")
        assert not domain.remote_step_applies(
            started, Step(Status.ACCEPTED, T0, "amal"), Side.RECIPIENT
        )

    def test_a_node_cannot_announce_the_other_sides_steps(self) -> None:
        for status, side in itertools.product(Status, Side):
            plausible = domain.remote_status_is_plausible(status, side)
            if side is Side.SENDER:
                assert plausible == (status in (Status.WITHDRAWN, Status.EXPIRED))
            elif status in (Status.ACCEPTED, Status.COMPLETED, Status.DECLINED):
                assert plausible


class TestDeadlines:
    def test_due_dates_follow_the_urgency(self) -> None:
        due = domain.due_dates(T0, Urgency.EMERGENCY, DEFAULT_DEADLINES)
        assert due.acknowledge_by == T0 + timedelta(hours=4)
        assert due.answer_by == T0 + timedelta(hours=24)
        routine = domain.due_dates(T0, Urgency.ROUTINE, DEFAULT_DEADLINES)
        assert routine.answer_by == T0 + timedelta(days=7)

    def test_alarms_remind_before_breach_at_and_only_the_sender_expires(self) -> None:
        due = domain.due_dates(T0, Urgency.EMERGENCY, DEFAULT_DEADLINES)
        grace = timedelta(hours=24)
        sender = domain.alarms(T0, due, side=Side.SENDER, reminder_share=0.25, grace=grace)
        recipient = domain.alarms(T0, due, side=Side.RECIPIENT, reminder_share=0.25, grace=grace)
        fires = {(a.timer, a.deadline): a.fires_at - T0 for a in sender}
        assert fires == {
            (domain.Timer.REMINDER, domain.Deadline.ACKNOWLEDGE): timedelta(hours=3),
            (domain.Timer.BREACH, domain.Deadline.ACKNOWLEDGE): timedelta(hours=4),
            (domain.Timer.REMINDER, domain.Deadline.ANSWER): timedelta(hours=18),
            (domain.Timer.BREACH, domain.Deadline.ANSWER): timedelta(hours=24),
            (domain.Timer.EXPIRY, domain.Deadline.ACKNOWLEDGE): timedelta(hours=28),
        }
        assert domain.Timer.EXPIRY not in {a.timer for a in recipient}

    def test_an_answered_referral_owes_nothing(self) -> None:
        assert domain.still_pending(domain.Deadline.ACKNOWLEDGE, Status.RECEIVED)
        assert not domain.still_pending(domain.Deadline.ACKNOWLEDGE, Status.ACCEPTED)
        assert domain.still_pending(domain.Deadline.ANSWER, Status.ACCEPTED)
        assert not domain.still_pending(domain.Deadline.ANSWER, Status.IN_PROGRESS)
        assert not domain.still_pending(domain.Deadline.ANSWER, Status.WITHDRAWN)


class TestLegalBasis:
    def test_a_referral_states_its_basis(self) -> None:
        with pytest.raises(Invalid) as refused:
            domain.check_legal_basis(None, False)
        assert refused.value.field == "legal_basis"

    def test_consent_is_recorded_when_and_only_when_it_is_the_basis(self) -> None:
        assert domain.check_legal_basis(LegalBasis.CONSENT, True) is LegalBasis.CONSENT
        for basis, consented in ((LegalBasis.CONSENT, False), (LegalBasis.VITAL_INTEREST, True)):
            with pytest.raises(Invalid) as refused:
                domain.check_legal_basis(basis, consented)
            assert refused.value.field == "consent"
        assert (
            domain.check_legal_basis(LegalBasis.VITAL_INTEREST, False) is LegalBasis.VITAL_INTEREST
        )

    def test_a_consent_that_ran_out_carries_nothing(self) -> None:
        domain.check_consent_current(None, T0)
        domain.check_consent_current(T0 + timedelta(days=1), T0)
        with pytest.raises(Invalid) as refused:
            domain.check_consent_current(T0, T0)
        assert refused.value.field == "consent.expires_at"
