"""What the hub's nats-server says of a refused second leaf link, as the directory reads it
(services/directory/second_links.py): the advisory nats-server 2.15 publishes, as seen."""

from __future__ import annotations

import json

from services.directory.second_links import refused_link

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
    assert refused_link(json.dumps(SEEN).encode()) == (
        "TR2Ek47EgXYpy3YmFueeCY",
        "amal",
        "127.0.0.1",
    )


def test_other_disconnections_are_not_refused_links() -> None:
    closed = {**SEEN, "reason": "Client Closed"}
    client = {**SEEN, "client": {**SEEN["client"], "kind": "Client"}}  # type: ignore[dict-item]
    hub = {**SEEN, "client": {**SEEN["client"], "acc": "HUB"}}  # type: ignore[dict-item]
    for advisory in (closed, client, hub):
        assert refused_link(json.dumps(advisory).encode()) is None
    assert refused_link(b"not json") is None
    assert refused_link(b'{"client": null}') is None
