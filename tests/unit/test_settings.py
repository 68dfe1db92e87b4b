"""Node settings refuse what would make a node misbehave later."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import DEMO_SECRET, NodeSettings

BASE = {"nats_url": "nats://127.0.0.1:4222", "database_url": "postgresql://x"}


def test_a_member_node_must_be_named_after_its_organisation() -> None:
    with pytest.raises(ValidationError, match="a member node's id is its organisation's id"):
        NodeSettings(node_id="sanad2", org="sanad", secret_key="s" * 20, **BASE)


def test_the_demo_secret_is_accepted_only_in_the_demo() -> None:
    assert NodeSettings(node_id="sanad", org="sanad", secret_key=DEMO_SECRET, demo=True, **BASE)
    with pytest.raises(ValidationError, match="demo's secret"):
        NodeSettings(node_id="sanad", org="sanad", secret_key=DEMO_SECRET, **BASE)


def test_the_hub_has_its_own_node_id() -> None:
    hub = NodeSettings(
        node_id="hub", org="secretariat", role="secretariat", secret_key="s" * 20, **BASE
    )
    assert hub.is_hub
