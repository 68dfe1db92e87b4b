"""The chaos suite's short version: every kind of fault once, on a network of its own, while
two members send referrals to a third; then nothing acknowledged is lost, duplicated or stuck,
every audit chain verifies, and no request answered 500 (a dependency down is a 503)."""

from __future__ import annotations

import pytest

from tests.chaos.faults import KINDS
from tests.chaos.run import Options, run

pytestmark = pytest.mark.e2e


async def test_every_kind_of_fault_once_loses_duplicates_and_sticks_nothing() -> None:
    options = Options(
        duration=20,  # the kinds go first, in order, whatever the duration; then at random
        rate=6,
        seed=13,
        every_kind_first=True,
        gap=(0.3, 0.8),
        hold=(1.0, 2.0),
        settle_within=60,
        quiet_within=60,
        write=False,
    )
    result = await run(options, say=print)
    doc = result.document

    assert set(doc["faults_by_kind"]) == set(KINDS)
    assert doc["referrals_acknowledged"] > 100
    assert doc["referrals_unresolved"] == 0
    assert doc["refused_4xx"] == {}
    assert doc["examples"]["lost"] == [] and doc["lost"] == 0
    assert doc["examples"]["duplicated"] == [] and doc["duplicated"] == 0
    assert doc["examples"]["stuck"] == [] and doc["stuck"] == 0
    assert doc["broken_chains"] == []
    five_hundreds = {r: s["500"] for r, s in doc["http_5xx_by_route"].items() if "500" in s}
    assert five_hundreds == {}, doc["http_5xx_by_route"]
