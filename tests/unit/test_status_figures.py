"""How ``relais status`` counts the backlogs from what the nodes and the hub report, and how it
says what it could not reach."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.cli_status import inbound_backlog, outbound_backlog, render
from shared.ops import parse_source


def stream(name: str, last_seq: int, sourced: int | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "last_seq": last_seq,
        "last_sourced": None if sourced is None else {"stream": "x", "seq": sourced},
    }


def seen(*streams: dict[str, Any], unsent: dict[str, int] | None = None) -> dict[str, Any]:
    return {"status": {"streams": list(streams), "outbox_unsent": unsent or {}}}


AMAL = {"org": "amal"}
UNREACHABLE: dict[str, Any] = {"status": None}


class TestTheSourceHeader:
    def test_names_the_origin_stream_and_its_sequence(self) -> None:
        header = "TO_amal:bTMUkJQk 11 > > relais.net.sanad.amal.link.probed NXzbIGOx"
        assert parse_source(header) == {"stream": "TO_amal", "seq": 11}

    @pytest.mark.parametrize("header", [None, "", "TO_amal", "TO_amal:abc x"])
    def test_a_missing_or_odd_header_is_unknown(self, header: str | None) -> None:
        assert parse_source(header) is None


class TestBacklogs:
    def test_outbound_is_what_the_hub_has_not_copied_from_the_outbox(self) -> None:
        amal = seen(stream("OUTBOX", 40), unsent={"referrals": 2})
        hub = seen(stream("FROM_amal", 31, sourced=37))
        found = outbound_backlog(AMAL, amal, hub, None)
        assert found == {"outbox_unsent": {"referrals": 2}, "not_at_hub": 3, "counted_from": "hub"}

    def test_inbound_is_what_waits_in_the_hubs_to_stream(self) -> None:
        amal = seen(stream("INBOX", 90, sourced=120))
        hub = seen(stream("TO_amal", 125))
        assert inbound_backlog(AMAL, amal, hub, None)["waiting_at_hub"] == 5

    def test_a_stopped_node_is_counted_from_where_its_inbox_stood(self) -> None:
        hub = seen(stream("TO_amal", 130))
        stopped = {"at": "…", "positions": {"INBOX": 125}}
        found = inbound_backlog(AMAL, UNREACHABLE, hub, stopped)
        assert found == {"waiting_at_hub": 5, "counted_from": "node at its stop"}

    def test_an_empty_inbox_has_everything_still_to_copy(self) -> None:
        assert (
            inbound_backlog(AMAL, seen(stream("INBOX", 0)), seen(stream("TO_amal", 4)), None)[
                "waiting_at_hub"
            ]
            == 4
        )

    def test_an_inbox_whose_position_cannot_be_read_is_unknown_not_zero(self) -> None:
        amal = seen(stream("INBOX", 90))  # messages, but no source header found
        assert (
            inbound_backlog(AMAL, amal, seen(stream("TO_amal", 125)), None)["waiting_at_hub"]
            is None
        )

    def test_without_the_hub_the_outbound_backlog_is_unknown(self) -> None:
        found = outbound_backlog(AMAL, seen(stream("OUTBOX", 40)), UNREACHABLE, None)
        assert found["not_at_hub"] is None


def test_what_cannot_be_reached_is_named_and_its_figures_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAIS_LANG", "en")
    report = {
        "launcher": "unreachable",
        "nodes": {
            "amal": {
                "url": "http://127.0.0.1:8002",
                "ready": False,
                "link": {"state": "down", "leaves": []},
                "outbound": {"outbox_unsent": None, "not_at_hub": None},
                "inbound": {"waiting_at_hub": 3},
                "consumers": None,
                "dead_letters": None,
                "processes": [],
                "unreachable": ["http://127.0.0.1:8002: connection refused"],
            }
        },
    }
    text = "\n".join(line for line, _ in render(report))
    assert "not ready" in text and "down" in text
    assert "3 events waiting at the hub" in text
    assert "cannot reach" in text and "connection refused" in text
    assert "unknown" in text
    assert "control socket" in text  # no launcher: no process states
