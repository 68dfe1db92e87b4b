"""What the checks after the heal look at, and the verdict: pure, from what the clients saw
(the ledger) and what the nodes hold (a snapshot of their databases, their audit chains'
verification and their dead letters).

- lost: acknowledged (201) but not at the recipient, or not even at the sender;
- duplicated: one key answered with two ids; a referral at a sender that no key accounts for
  (a create that escaped idempotency); a key whose id at the node is not the one acknowledged;
  a referral at the recipient that no sender holds; a step recorded twice (the same event
  applied again: ``received`` at the sender, ``sent`` at the recipient);
- stuck: acknowledged, at the recipient, but still ``sent`` at its sender after quiescence;
- other endings: acknowledged and neither ``sent`` nor ``received`` at the sender (refused by
  the recipient, expired), by status;
- broken chains: nodes whose audit chain does not verify;
- dead letters: how many per node, grouped by consumer, why, reason and event type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.driver import Sent

EXAMPLES = 10  # ids listed per finding, enough to look into


@dataclass
class Snapshot:
    """What the nodes hold once quiet."""

    outbox: dict[str, dict[str, str]]  # sender -> referral id -> status
    keys: dict[str, dict[str, str]]  # sender -> Idempotency-Key -> referral id
    received_steps: dict[str, Counter[str]]  # sender -> referral id -> `received` rows
    inbox: dict[str, tuple[str, str]]  # recipient: referral id -> (from org, status)
    inbox_sent_steps: Counter[str]  # recipient: referral id -> `sent` rows
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> verification
    dead_letters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class Verdict:
    attempted: int
    acknowledged: int
    refused: dict[str, int]  # 4xx answers (never retried), by answer
    unresolved: int  # the client never had an answer by the end (not acknowledged)
    lost: list[str]
    duplicated: list[str]
    stuck: list[str]
    other_endings: dict[str, int]
    broken_chains: list[str]
    dead_letters: dict[str, int]
    dead_letter_groups: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.broken_chains)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "referrals_attempted": self.attempted,
            "referrals_acknowledged": self.acknowledged,
            "referrals_refused_4xx": sum(self.refused.values()),
            "refused_4xx": self.refused,
            "referrals_unresolved": self.unresolved,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "stuck": len(self.stuck),
            "other_endings": self.other_endings,
            "broken_chains": self.broken_chains,
            "dead_letters": self.dead_letters,
            "dead_letter_groups": self.dead_letter_groups,
            "examples": {
                "lost": self.lost[:EXAMPLES],
                "duplicated": self.duplicated[:EXAMPLES],
                "stuck": self.stuck[:EXAMPLES],
            },
        }


def judge(sent: Iterable[Sent], snap: Snapshot) -> Verdict:
    sent = list(sent)
    acked = [s for s in sent if s.referral_id is not None]
    lost: list[str] = []
    duplicated: list[str] = []
    stuck: list[str] = []
    endings: Counter[str] = Counter()

    for s in acked:
        assert s.referral_id is not None
        rid = s.referral_id
        duplicated += [f"{rid}: the same key also answered {other}" for other in s.other_ids]
        at_node = snap.keys.get(s.sender, {}).get(s.key)
        if at_node is not None and at_node != rid:
            duplicated.append(f"{rid}: its key is held for {at_node} at {s.sender}")
        status = snap.outbox.get(s.sender, {}).get(rid)
        if status is None:
            lost.append(f"{rid}: not at its sender {s.sender}")
            continue
        if rid not in snap.inbox:
            lost.append(f"{rid}: not at the recipient")
            continue
        if status == "sent":
            stuck.append(f"{rid}: still sent at {s.sender}")
        elif status != "received":
            endings[status] += 1

    for sender, rows in snap.outbox.items():
        accounted = set(snap.keys.get(sender, {}).values())
        duplicated += [f"{rid}: at {sender} under no key" for rid in rows if rid not in accounted]
        duplicated += [
            f"{rid}: received {n} times at {sender}"
            for rid, n in snap.received_steps.get(sender, Counter()).items()
            if n > 1
        ]
    everywhere = {rid for rows in snap.outbox.values() for rid in rows}
    duplicated += [
        f"{rid}: at the recipient, at no sender" for rid in snap.inbox if rid not in everywhere
    ]
    duplicated += [
        f"{rid}: sent {n} times at the recipient"
        for rid, n in snap.inbox_sent_steps.items()
        if n > 1
    ]

    groups: Counter[tuple[str, str, str, str, str]] = Counter()
    for node, letters in snap.dead_letters.items():
        for letter in letters:
            groups[
                (
                    node,
                    str(letter.get("consumer")),
                    str(letter.get("why")),
                    str(letter.get("reason")),
                    str(letter.get("event_type")),
                )
            ] += 1
    return Verdict(
        attempted=len(sent),
        acknowledged=len(acked),
        refused=dict(Counter(s.refused for s in sent if s.refused is not None)),
        unresolved=sum(1 for s in sent if s.referral_id is None and s.refused is None),
        lost=lost,
        duplicated=duplicated,
        stuck=stuck,
        other_endings=dict(endings),
        broken_chains=sorted(node for node, report in snap.chains.items() if not report.get("ok")),
        dead_letters={node: len(letters) for node, letters in snap.dead_letters.items()},
        dead_letter_groups=[
            {
                "node": k[0],
                "consumer": k[1],
                "why": k[2],
                "reason": k[3],
                "event_type": k[4],
                "count": n,
            }
            for k, n in sorted(groups.items())
        ],
    )
