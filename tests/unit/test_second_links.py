"""What the hub's nats-server says of a refused second leaf link, as the directory reads it
(services/directory/second_links.py): the advisory nats-server 2.15 publishes, as seen; and
which refusals it tells, a dead link explaining those a close of the member's link follows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.directory.second_links import Held, Seen, read

SEEN = {  # $SYS.ACCOUNT.ORG_amal.DISCONNECT, for a second leaf with amal's nkey (server trimmed)
    "type": "io.nats.server.advisory.v1.client_disconnect",
    "id": "TR2Ek47EgXYpy3YmFueeCY",
    "timestamp": "2026-12-03T18:38:36.911365584Z",
    "client": {
        "start": "2026-12-03T18:38:36.899496678Z",
        "host": "127.0.0.1",
        "id": 11,
        "acc": "ORG_amal",
        "user": "UAEHAHQYVGLGUP3LNPMHAZGUZHE537MSBEEZGAQ2JK2ZDHL6BBLSHLMC",
        "name": "rogue-73ad10",
        "kind": "Leafnode",
    },
    "reason": "Maximum Account Connections Exceeded",
}


def test_a_refused_second_leaf_names_its_member_and_where_it_came_from() -> None:
    assert read(json.dumps(SEEN).encode()) == Seen(
        advisory_id="TR2Ek47EgXYpy3YmFueeCY",
        org="amal",
        refused=True,
        at=datetime(2026, 12, 3, 18, 38, 36, 911365, tzinfo=UTC),
        host="127.0.0.1",
    )


def test_the_member_s_own_link_closed_is_read_as_a_close() -> None:
    stale = read(json.dumps({**SEEN, "reason": "Stale Connection"}).encode())
    assert stale is not None
    assert (stale.org, stale.refused) == ("amal", False)


def test_other_disconnections_are_not_members_links() -> None:
    client = {**SEEN, "client": {**SEEN["client"], "kind": "Client"}}  # type: ignore[dict-item]
    hub = {**SEEN, "client": {**SEEN["client"], "acc": "HUB"}}  # type: ignore[dict-item]
    for advisory in (client, hub):
        assert read(json.dumps(advisory).encode()) is None
    assert read(b"not json") is None
    assert read(b'{"client": null}') is None


T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=45)


def refusal(n: int, org: str = "amal") -> Seen:
    return Seen(f"R{n}", org, refused=True, at=T0 + timedelta(seconds=n))


def close(n: float, org: str = "amal") -> Seen:
    return Seen(f"C{n}", org, refused=False, at=T0 + timedelta(seconds=n))


def test_refusals_the_dead_link_s_close_follows_are_a_restart_and_told_to_no_one() -> None:
    held = Held(WINDOW)
    for n in range(30):  # the node back up, refused each second while the hub holds its link
        held.heard(refusal(n), now=n)
    held.heard(close(30.5), now=30.5)  # the hub drops the dead link; the node links again
    assert held.due(now=1000) == []


def test_refusals_with_the_held_link_alive_past_the_window_are_told_all_together() -> None:
    held = Held(WINDOW)
    for n in range(3):
        held.heard(refusal(n), now=n)
    assert held.due(now=44) == []  # a dead link could still explain them
    assert [r.advisory_id for r in held.due(now=45)] == ["R0", "R1", "R2"]
    assert held.due(now=1000) == []


def test_a_refusal_heard_after_the_close_that_explains_it_is_not_told() -> None:
    held = Held(WINDOW)
    held.heard(close(5), now=5.1)
    held.heard(refusal(4), now=5.2)  # a hub cluster's servers: not always heard in order
    assert held.due(now=1000) == []


def test_refused_again_after_the_close_waits_its_own_window() -> None:
    # The genuine link closed while a copy was retrying: the copy took the place, and now the
    # genuine node is the one refused, with the copy's link alive.
    held = Held(WINDOW)
    held.heard(refusal(0), now=0)
    held.heard(close(10), now=10)
    held.heard(refusal(11), now=11)
    assert held.due(now=50) == []
    assert [r.advisory_id for r in held.due(now=56)] == ["R11"]


def test_one_member_s_close_says_nothing_of_another_s_refusals() -> None:
    held = Held(WINDOW)
    held.heard(refusal(0, "amal"), now=0)
    held.heard(close(1, "sanad"), now=1)
    assert [r.org for r in held.due(now=45)] == ["amal"]


def test_what_was_held_while_the_hub_was_not_heard_is_not_judged() -> None:
    held = Held(WINDOW)
    held.heard(refusal(0), now=0)
    held.forget()
    assert held.due(now=1000) == []
