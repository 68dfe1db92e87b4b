"""The chaos suite's verdict: what counts as lost, duplicated, stuck, and a broken chain."""

from __future__ import annotations

from collections import Counter

from tests.chaos.checks import Snapshot, judge
from tests.chaos.driver import Sent


def acked(sender: str, key: str, rid: str) -> Sent:
    return Sent(sender, key, 0.0, attempts=1, referral_id=rid, acked_at=1.0)


def clean(**changes: object) -> Snapshot:
    snap = Snapshot(
        outbox={"sanad": {"r1": "received", "r2": "received"}},
        keys={"sanad": {"k1": "r1", "k2": "r2"}},
        received_steps={"sanad": Counter({"r1": 1, "r2": 1})},
        inbox={"r1": ("sanad", "received"), "r2": ("sanad", "received")},
        inbox_sent_steps=Counter({"r1": 1, "r2": 1}),
        chains={"sanad": {"ok": True}, "amal": {"ok": True}},
        dead_letters={"sanad": [], "amal": []},
    )
    for name, value in changes.items():
        setattr(snap, name, value)
    return snap


SENT = [acked("sanad", "k1", "r1"), acked("sanad", "k2", "r2")]


def test_everything_acknowledged_received_once_is_a_clean_run() -> None:
    verdict = judge(SENT, clean())
    assert verdict.ok
    assert (verdict.acknowledged, verdict.lost, verdict.duplicated, verdict.stuck) == (
        2,
        [],
        [],
        [],
    )


def test_an_acknowledged_referral_missing_at_the_recipient_is_lost() -> None:
    verdict = judge(SENT, clean(inbox={"r1": ("sanad", "received")}))
    assert not verdict.ok
    assert verdict.lost == ["r2: not at the recipient"]


def test_an_acknowledged_referral_unknown_to_its_sender_is_lost() -> None:
    verdict = judge(SENT, clean(outbox={"sanad": {"r1": "received"}}))
    assert verdict.lost == ["r2: not at its sender sanad"]


def test_still_sent_after_quiescence_is_stuck() -> None:
    verdict = judge(SENT, clean(outbox={"sanad": {"r1": "received", "r2": "sent"}}))
    assert verdict.stuck == ["r2: still sent at sanad"] and not verdict.ok


def test_a_create_no_key_accounts_for_is_a_duplicate() -> None:
    outbox = {"sanad": {"r1": "received", "r2": "received", "r3": "received"}}
    inbox = dict.fromkeys(("r1", "r2", "r3"), ("sanad", "received"))
    verdict = judge(SENT, clean(outbox=outbox, inbox=inbox))
    assert verdict.duplicated == ["r3: at sanad under no key"]


def test_one_key_answered_with_two_ids_is_a_duplicate() -> None:
    twice = acked("sanad", "k2", "r2")
    twice.other_ids.append("r9")
    verdict = judge([SENT[0], twice], clean())
    assert verdict.duplicated == ["r2: the same key also answered r9"]


def test_a_step_applied_twice_is_a_duplicate() -> None:
    verdict = judge(
        SENT,
        clean(
            received_steps={"sanad": Counter({"r1": 2, "r2": 1})},
            inbox_sent_steps=Counter({"r1": 1, "r2": 3}),
        ),
    )
    assert verdict.duplicated == [
        "r1: received 2 times at sanad",
        "r2: sent 3 times at the recipient",
    ]


def test_a_referral_at_the_recipient_that_no_sender_holds_is_a_duplicate() -> None:
    inbox = {"r1": ("sanad", "received"), "r2": ("sanad", "received"), "r7": ("sanad", "received")}
    verdict = judge(SENT, clean(inbox=inbox))
    assert verdict.duplicated == ["r7: at the recipient, at no sender"]


def test_a_refused_or_expired_referral_is_another_ending_not_a_loss() -> None:
    verdict = judge(SENT, clean(outbox={"sanad": {"r1": "received", "r2": "refused"}}))
    assert verdict.ok and verdict.other_endings == {"refused": 1}


def test_unanswered_and_4xx_creates_are_counted_apart_from_the_acknowledged() -> None:
    unanswered = Sent("sanad", "k3", 0.0, attempts=9)
    bad = Sent("sanad", "k4", 0.0, attempts=1, refused="422: bad")
    verdict = judge([*SENT, unanswered, bad], clean())
    assert (verdict.attempted, verdict.acknowledged, verdict.unresolved) == (4, 2, 1)
    assert verdict.refused == {"422: bad": 1}
    assert verdict.ok  # neither was acknowledged: the client knows it has no referral


def test_a_chain_that_does_not_verify_fails_the_run() -> None:
    verdict = judge(SENT, clean(chains={"sanad": {"ok": True}, "amal": {"ok": False}}))
    assert verdict.broken_chains == ["amal"] and not verdict.ok


def test_dead_letters_are_counted_and_grouped_by_what_the_node_says() -> None:
    letter = {"consumer": "referrals", "why": "max_deliveries", "reason": "", "event_type": "x.v1"}
    verdict = judge(SENT, clean(dead_letters={"sanad": [letter, letter], "amal": []}))
    assert verdict.dead_letters == {"sanad": 2, "amal": 0}
    assert verdict.dead_letter_groups == [
        {
            "node": "sanad",
            "consumer": "referrals",
            "why": "max_deliveries",
            "reason": "",
            "event_type": "x.v1",
            "count": 2,
        }
    ]
