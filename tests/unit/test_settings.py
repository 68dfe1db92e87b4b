"""Node settings refuse what would make a node misbehave later."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import DEMO_SECRET, NodeRole, NodeSettings

NATS, DATABASE = "nats://127.0.0.1:4222", "postgresql://x"


def settings(node_id: str, org: str, secret: str, **extra: bool | NodeRole) -> NodeSettings:
    return NodeSettings.model_validate(
        {
            "node_id": node_id,
            "org": org,
            "secret_key": secret,
            "nats_url": NATS,
            "database_url": DATABASE,
            **extra,
        }
    )


def test_a_member_node_must_be_named_after_its_organisation() -> None:
    with pytest.raises(ValidationError, match="a member node's id is its organisation's id"):
        settings("sanad2", "sanad", "s" * 20)


def test_the_demo_secret_is_accepted_only_in_the_demo() -> None:
    assert settings("sanad", "sanad", DEMO_SECRET, demo=True).demo
    with pytest.raises(ValidationError, match="demo's secret"):
        settings("sanad", "sanad", DEMO_SECRET)


def test_the_hub_has_a_node_id_of_its_own() -> None:
    assert settings("hub", "secretariat", "s" * 20, role=NodeRole.SECRETARIAT).is_hub
