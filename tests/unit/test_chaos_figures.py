"""The chaos suite's figures: recovery times per fault kind, 5xx by route, the JSON file."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos.checks import Snapshot, judge
from tests.chaos.faults import Fault
from tests.chaos.figures import document, first_after, recovery, server_errors, table, write_json


def fault(kind: str, injected: float, healed: float | None) -> Fault:
    return Fault(kind, "t", injected, "2026-12-02T14:00:00+00:00", healed_at=healed)


def test_first_after_is_the_wait_for_the_next_event_or_none() -> None:
    assert first_after([1.0, 3.0, 7.0], 2.0) == 1.0
    assert first_after([1.0, 3.0, 7.0], 3.0) == 0.0
    assert first_after([1.0, 3.0], 4.0) is None


def test_recovery_is_timed_from_the_injection_to_a_create_and_from_the_heal_to_a_received() -> None:
    faults = [fault("node-kill", 10, 14), fault("node-kill", 20, 22), fault("link-cut", 30, 33)]
    acks = [11.0, 12.0, 20.5, 31.0]
    received = [15.0, 26.0]
    found = recovery(faults, acks, received)
    assert found["node-kill"]["to_create_s"] == {"median": 0.5, "p90": 1.0, "max": 1.0}
    assert found["node-kill"]["to_received_s"] == {"median": 1.0, "p90": 4.0, "max": 4.0}
    assert found["node-kill"]["none_after"] == 0
    # Nothing was received after the link came back: the run ended first.
    assert found["link-cut"]["to_received_s"] is None and found["link-cut"]["none_after"] == 1


def test_server_errors_are_5xx_only_by_route() -> None:
    answers = Counter(
        {
            ("POST /api/v1/referrals", "201"): 90,
            ("POST /api/v1/referrals", "503"): 4,
            ("POST /api/v1/referrals", "500"): 1,
            ("POST /api/v1/referrals", "timeout"): 3,
        }
    )
    assert server_errors(answers) == {"POST /api/v1/referrals": {"500": 1, "503": 4}}


def test_the_document_holds_every_figure_and_is_written_beside_the_benchmarks(
    tmp_path: Path,
) -> None:
    snap = Snapshot(
        {}, {}, {}, {}, Counter(), chains={"hub": {"ok": True}}, dead_letters={"hub": []}
    )
    doc = document(
        settings={"seed": 1},
        faults=[fault("node-kill", 1, 2), fault("clock-jump", 3, 4)],
        verdict=judge([], snap),
        answers=Counter({("POST /api/v1/referrals", "503"): 2}),
        acks=[1.5],
        received=[2.5],
        timings={"network_up": 20.0},
    )
    assert doc["faults"] == 2
    assert doc["faults_by_kind"] == {"clock-jump": 1, "node-kill": 1}
    assert (doc["lost"], doc["duplicated"], doc["stuck"]) == (0, 0, 0)
    assert doc["http_5xx_by_route"] == {"POST /api/v1/referrals": {"503": 2}}
    assert "node-kill" in table(doc) and "HTTP 5xx 2" in table(doc)
    path = write_json(datetime(2026, 12, 2, 14, 5, 9, tzinfo=UTC), doc, tmp_path)
    assert path.name == "20261202T140509Z-chaos.json"
    assert json.loads(path.read_text())["recovery_by_kind"]["node-kill"]["none_after"] == 0
