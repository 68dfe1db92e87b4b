"""A verifier in another language checks what Relais signs and chains: node, with its own
crypto and its own RFC 8785 (``tests/tools/verify_signatures.mjs``), verifies an envelope's
signature, an audit checkpoint's, a directory record's and an audit record's hash."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.audit import domain
from services.audit.domain import Draft
from services.referrals import envelope
from shared.contracts.audit import checkpoint_document
from shared.crypto import NodeKeys
from tests.unit.test_referral_envelope import seal

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tests" / "tools" / "verify_signatures.mjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node missing: install Node.js")


def verdicts(cases: list[dict[str, Any]]) -> list[bool]:
    assert NODE is not None
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as file:
        json.dump(cases, file, ensure_ascii=False)
        file.flush()
        run = subprocess.run(
            [NODE, str(TOOL), file.name], capture_output=True, text=True, timeout=60, check=False
        )
    assert run.returncode == 0, run.stderr
    result: list[bool] = json.loads(run.stdout)
    return result


def public(keys: NodeKeys) -> str:
    return envelope.b64(keys.signing_public)


def test_javascript_verifies_an_envelope_a_checkpoint_and_a_record(tmp_path: Path) -> None:
    sender = NodeKeys.load_or_create(tmp_path / "sender")
    recipient = NodeKeys.load_or_create(tmp_path / "recipient")
    offer = seal(sender, recipient)
    signed_envelope = {
        "header": offer.header.model_dump(mode="json"),
        "sealed": offer.sealed.model_dump(mode="json"),
    }
    at = datetime(2026, 12, 3, 9, 30, 0, 123456, tzinfo=UTC)
    checkpoint = checkpoint_document("sanad", "sanad", 42, "a" * 64, at)
    _, checkpoint_signature = sender.sign(checkpoint)
    # Numbers and keys where Python's json.dumps and RFC 8785 part ways.
    record = {
        "org_id": "sanad",
        "capacity": 12.0,
        "lat": 1e-7,
        "big": 1e21,
        "\U0001f600": 1,
        "\ufb33": "דּ",
        "name": {"ar": "سند", "fr": "Sanad"},
    }
    _, record_signature = sender.sign(record)
    draft = Draft(
        at,
        "referrals",
        "sanad",
        "user:أمينة",
        "referral.accepted",
        "referral:1",
        "",
        "ok",
        "019ac000-0000-7000-8000-000000000001",
    )
    entry = domain.chain(draft, seq=1, prev_hash=domain.GENESIS)
    cases = [
        {"document": signed_envelope, "signature": offer.signature, "public_key": public(sender)},
        {"document": checkpoint, "signature": checkpoint_signature, "public_key": public(sender)},
        {"document": record, "signature": record_signature, "public_key": public(sender)},
        {"document": entry.fields(), "sha256": entry.hash},
    ]
    assert verdicts(cases) == [True, True, True, True]


def test_javascript_refuses_what_was_changed_or_signed_by_another_key(tmp_path: Path) -> None:
    keys = NodeKeys.load_or_create(tmp_path / "keys")
    other = NodeKeys.load_or_create(tmp_path / "other")
    document = checkpoint_document("sanad", "sanad", 42, "a" * 64, datetime.now(UTC))
    _, signature = keys.sign(document)
    cases = [
        {"document": {**document, "seq": 43}, "signature": signature, "public_key": public(keys)},
        {"document": document, "signature": signature, "public_key": public(other)},
        {"document": {"seq": 1}, "sha256": "0" * 64},
    ]
    assert verdicts(cases) == [False, False, False]
