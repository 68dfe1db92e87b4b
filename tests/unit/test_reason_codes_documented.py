"""Reason codes are lists in the published contracts, not free strings: a referral's history
and its refusal, as the NATS replies (``/asyncapi.json``) and the HTTP API (``/openapi.json``)
give them, and the refusal event, name every code a developer may meet."""

from __future__ import annotations

from typing import Any

import deploy.node  # noqa: F401  (every service declares its commands on import)
from deploy.node import build_app
from services.referrals import forms
from shared.asyncapi import document
from shared.contracts.referrals import RefusalReason
from shared.settings import DEMO_SECRET, NodeSettings

REFUSALS = [r.value for r in RefusalReason]


def step_codes() -> set[str]:
    return {code for codes in forms.reasons().values() for code in codes}


def enum_of(schema: dict[str, Any]) -> list[str]:
    (listed,) = [s for s in schema["anyOf"] if s.get("type") == "string"]
    values: list[str] = listed["enum"]
    return values


def check_referral_schemas(schemas: dict[str, Any], detail: str, history: str) -> None:
    reason = schemas[history]["properties"]["reason"]
    assert set(enum_of(reason)) == step_codes() | set(REFUSALS)
    assert {"type": "null"} in reason["anyOf"]
    assert enum_of(schemas[detail]["properties"]["refused_reason"]) == REFUSALS


def test_the_nats_replies_list_the_history_and_refusal_reasons() -> None:
    schemas = document()["components"]["schemas"]
    check_referral_schemas(schemas, "ReferralDetail", "HistoryOut")


def test_the_http_api_lists_the_same_codes() -> None:
    settings = NodeSettings(
        node_id="amal",
        org="amal",
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        secret_key=DEMO_SECRET,
        demo=True,
    )
    schemas = build_app(settings).openapi()["components"]["schemas"]
    check_referral_schemas(schemas, "ReferralDetail", "HistoryOut")


def test_the_refusal_event_lists_why_an_envelope_was_refused() -> None:
    schemas = document()["components"]["schemas"]
    reason = schemas["ReferralRefused"]["properties"]["reason"]
    assert reason["enum"] == REFUSALS


def test_a_transition_event_lists_the_steps_reasons() -> None:
    schemas = document()["components"]["schemas"]
    reason = schemas["ReferralTransitioned"]["properties"]["reason"]
    assert set(enum_of(reason)) == step_codes()
