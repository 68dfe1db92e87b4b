"""A referral's lifecycle, its deadlines and how two nodes agree on it: pure rules, no I/O.

Each node holds its own copy of a referral and tells the other every step it makes. The
sender's node makes the closing steps of the sender (withdraw, expire); the recipient's node
makes every other step. Steps can cross in flight (a withdrawal on its way while the
recipient completes), so a step from the other node is applied by rules that make both nodes
end in the same state whatever the order of arrival:

- a recipient's step moves the referral forward only (received < accepted < in_progress);
- a sender's closing step closes any referral still open;
- when both sides closed it, the earlier closing wins (by time, then organisation id), so
  each node keeps the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.contracts.referrals import Deadlines, LegalBasis, Status, Urgency
from shared.errors import Conflict, Forbidden, Invalid, InvalidTransition


class Side(StrEnum):
    SENDER = "sender"
    RECIPIENT = "recipient"


class Action(StrEnum):
    """What a person can do to a referral (the last segment of its URL)."""

    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    COMPLETE = "complete"
    CLOSE = "close"
    WITHDRAW = "withdraw"


TERMINAL = frozenset(
    {
        Status.COMPLETED,
        Status.DECLINED,
        Status.CLOSED_UNRESOLVED,
        Status.WITHDRAWN,
        Status.EXPIRED,
    }
)
# How far along the recipient has taken it; every terminal status is beyond all of these.
_PROGRESS = {Status.SENT: 0, Status.RECEIVED: 1, Status.ACCEPTED: 2, Status.IN_PROGRESS: 3}


@dataclass(frozen=True)
class Move:
    action: Action
    side: Side
    leads_to: Status
    allowed_from: frozenset[Status]
    reason: str  # which reason list the step needs: "" (none), or a key of reasons.json
    reason_required: bool


MOVES = {
    move.action: move
    for move in (
        Move(
            Action.ACCEPT,
            Side.RECIPIENT,
            Status.ACCEPTED,
            frozenset({Status.RECEIVED}),
            "",
            False,
        ),
        Move(
            Action.DECLINE,
            Side.RECIPIENT,
            Status.DECLINED,
            frozenset({Status.RECEIVED}),
            "decline",
            True,
        ),
        Move(
            Action.START,
            Side.RECIPIENT,
            Status.IN_PROGRESS,
            frozenset({Status.ACCEPTED}),
            "",
            False,
        ),
        Move(
            Action.COMPLETE,
            Side.RECIPIENT,
            Status.COMPLETED,
            frozenset({Status.IN_PROGRESS}),
            "outcome",
            True,
        ),
        Move(
            Action.CLOSE,
            Side.RECIPIENT,
            Status.CLOSED_UNRESOLVED,
            frozenset({Status.ACCEPTED, Status.IN_PROGRESS}),
            "close",
            True,
        ),
        Move(
            Action.WITHDRAW,
            Side.SENDER,
            Status.WITHDRAWN,
            frozenset(_PROGRESS),
            "withdraw",
            False,
        ),
    )
}


def allowed_actions(status: Status, side: Side) -> list[Action]:
    """What this side's people may do now, in the lifecycle's order."""
    return [m.action for m in MOVES.values() if m.side is side and status in m.allowed_from]


def local_move(status: Status, side: Side, action: Action, reason: str | None) -> Status:
    """The status ``action`` leads to from ``status``; a clear refusal otherwise."""
    move = MOVES[action]
    if move.side is not side:
        whose = "recipient" if move.side is Side.RECIPIENT else "sender"
        raise Forbidden(f"only the {whose} organisation can {action.value} this referral")
    if status not in move.allowed_from:
        allowed = [a.value for a in allowed_actions(status, side)]
        raise InvalidTransition(
            f"a referral that is {status.value} cannot be {move.leads_to.value} "
            f"(allowed now: {', '.join(allowed) or 'none'})",
            allowed=allowed,
        )
    if move.reason_required and not reason:
        raise Invalid(f"say why: {action.value} needs a reason code", field="reason")
    if reason and not move.reason:
        raise Invalid(f"{action.value} takes no reason code", field="reason")
    return move.leads_to


@dataclass(frozen=True)
class Step:
    """A status a node reached, when and by which organisation."""

    status: Status
    at: datetime
    by_org: str

    def precedes(self, other: Step) -> bool:
        return (self.at, self.by_org) < (other.at, other.by_org)


def remote_step_applies(current: Step, incoming: Step, incoming_side: Side) -> bool:
    """Whether a step made on the other node changes this node's copy (see the module's
    rules); ``False`` means it arrived late and is kept in the history only."""
    if current.status in TERMINAL:
        return incoming.status in TERMINAL and incoming.precedes(current)
    if incoming.status in TERMINAL:
        return True
    if incoming_side is Side.SENDER:
        return False  # the sender makes no open step after sending
    return _PROGRESS[incoming.status] > _PROGRESS[current.status]


def remote_status_is_plausible(status: Status, side: Side) -> bool:
    """Which statuses each side may announce: a node cannot make the other side's steps."""
    if side is Side.SENDER:
        return status in (Status.WITHDRAWN, Status.EXPIRED)
    return status not in (Status.SENT, Status.WITHDRAWN, Status.EXPIRED)


# -- deadlines -------------------------------------------------------------------------------


class Deadline(StrEnum):
    ACKNOWLEDGE = "acknowledge"  # accepted or declined
    ANSWER = "answer"  # the service started, or the referral closed


class Timer(StrEnum):
    REMINDER = "reminder"
    BREACH = "breach"
    EXPIRY = "expiry"


@dataclass(frozen=True)
class DueDates:
    acknowledge_by: datetime
    answer_by: datetime


def check_legal_basis(basis: LegalBasis | None, consented: bool) -> LegalBasis:
    """A referral is sent on a stated legal basis, and consent is recorded when, and only when,
    it is that basis; returns the basis, ``Invalid`` naming the field if not."""
    if basis is None:
        raise Invalid("a referral needs its legal basis", field="legal_basis")
    if basis is LegalBasis.CONSENT and not consented:
        raise Invalid("the legal basis is consent: record the consent", field="consent")
    if basis is not LegalBasis.CONSENT and consented:
        raise Invalid("consent is recorded only when it is the legal basis", field="consent")
    return basis


def check_consent_current(expires_at: datetime | None, now: datetime) -> None:
    """A consent that has already run out cannot carry a new referral."""
    if expires_at is not None and expires_at <= now:
        raise Invalid("the consent has already expired", field="consent.expires_at")


def due_dates(created_at: datetime, urgency: Urgency, table: dict[Urgency, Deadlines]) -> DueDates:
    rule = table[urgency]
    return DueDates(
        acknowledge_by=created_at + timedelta(hours=rule.acknowledge_hours),
        answer_by=created_at + timedelta(hours=rule.answer_hours),
    )


@dataclass(frozen=True)
class Alarm:
    timer: Timer
    deadline: Deadline
    due_at: datetime  # the deadline itself
    fires_at: datetime


def alarms(
    created_at: datetime,
    due: DueDates,
    *,
    side: Side,
    reminder_share: float,
    grace: timedelta,
) -> list[Alarm]:
    """Every alarm of a new referral on one node; only the sender's node expires it."""
    found = []
    for deadline, due_at in (
        (Deadline.ACKNOWLEDGE, due.acknowledge_by),
        (Deadline.ANSWER, due.answer_by),
    ):
        lead = (due_at - created_at) * reminder_share
        found.append(Alarm(Timer.REMINDER, deadline, due_at, due_at - lead))
        found.append(Alarm(Timer.BREACH, deadline, due_at, due_at))
    if side is Side.SENDER:
        found.append(
            Alarm(
                Timer.EXPIRY, Deadline.ACKNOWLEDGE, due.acknowledge_by, due.acknowledge_by + grace
            )
        )
    return found


def still_pending(deadline: Deadline, status: Status) -> bool:
    """Whether the recipient still owes what ``deadline`` asks for."""
    if deadline is Deadline.ACKNOWLEDGE:
        return status in (Status.SENT, Status.RECEIVED)
    return status in (Status.SENT, Status.RECEIVED, Status.ACCEPTED)


# -- sending again ---------------------------------------------------------------------------

# A referral that ended without the service: it may be sent again, to another organisation.
# Refused is not a status (the recipient's node turned the envelope away; it stays "sent").
SEND_AGAIN_FROM = frozenset({Status.DECLINED, Status.EXPIRED})


def check_send_again(side: Side, status: Status, refused: bool) -> None:
    """Whether a new referral may follow this one: only the sender's own referral, and only
    once it ended without the service (declined, expired, or refused by the recipient's
    node). A clear refusal otherwise."""
    if side is not Side.SENDER:
        raise Invalid("only a referral this organisation sent can be sent again", field="follows")
    if status not in SEND_AGAIN_FROM and not refused:
        raise Conflict(
            f"a referral that is {status.value} cannot be sent again: only a declined, "
            "expired or refused one",
            field="follows",
        )


# -- the conversation ------------------------------------------------------------------------


def check_message_text(text: str, max_chars: int) -> str:
    """The text of a message as kept: not empty, not longer than ``max_chars``."""
    if not text.strip():
        raise Invalid("a message needs some text: it is empty", field="text")
    if len(text) > max_chars:
        raise Invalid(
            f"a message is at most {max_chars} characters: this one has {len(text)}",
            field="text",
        )
    return text


def conversation_open(closed_at: datetime | None, now: datetime, grace: timedelta) -> bool:
    """Whether a message may still be written: until the referral closed plus ``grace``."""
    return closed_at is None or now < closed_at + grace


def check_conversation_open(closed_at: datetime | None, now: datetime, grace: timedelta) -> None:
    if not conversation_open(closed_at, now, grace):
        days = grace / timedelta(days=1)
        raise Conflict(
            f"the conversation ended: the referral closed more than {days:g} days ago",
            field="text",
        )
