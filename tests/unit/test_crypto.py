"""A node's keys: made once, kept private, and their signatures checked."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from nacl.signing import VerifyKey

from shared.crypto import NodeKeys, verify
from shared.errors import Forbidden, Invalid


def test_keys_are_made_once_and_readable_by_the_node_only(tmp_path: Path) -> None:
    first = NodeKeys.load_or_create(tmp_path / "keys")
    again = NodeKeys.load_or_create(tmp_path / "keys")
    assert first.public_keys() == again.public_keys()
    for file in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_a_signature_holds_for_the_document_signed_and_no_other(tmp_path: Path) -> None:
    keys = NodeKeys.load_or_create(tmp_path)
    document = {"org_id": "sanad", "version": 3, "name": {"fr": "Sanad", "ar": "سند"}}
    _, signature = keys.sign(document)
    public = next(k["public_key"] for k in keys.public_keys() if k["use"] == "ed25519")
    verify(
        {"version": 3, "name": {"ar": "سند", "fr": "Sanad"}, "org_id": "sanad"}, signature, public
    )
    with pytest.raises(Forbidden):
        verify({**document, "version": 4}, signature, public)
    other = NodeKeys.load_or_create(tmp_path / "other")
    with pytest.raises(Forbidden):
        verify(document, other.sign(document)[1], public)


def _old_signature(keys: NodeKeys, document: object) -> str:
    """A signature as nodes made them before RFC 8785: bare base64 over sorted-key JSON."""
    signed = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(keys.signing.sign(signed.encode()).signature).decode()


def _public(keys: NodeKeys) -> str:
    return next(k["public_key"] for k in keys.public_keys() if k["use"] == "ed25519")


def test_a_signature_covers_the_rfc_8785_bytes_and_says_so(tmp_path: Path) -> None:
    keys = NodeKeys.load_or_create(tmp_path)
    document = {"capacity": 12.0, "name": "سند", "lat": 1e-7}
    _, signature = keys.sign(document)
    form, _, raw = signature.partition(":")
    assert form == "rfc8785"
    # What a verifier in another language does: RFC 8785 bytes, then plain Ed25519.
    VerifyKey(keys.signing_public).verify(
        '{"capacity":12,"lat":1e-7,"name":"سند"}'.encode(), base64.b64decode(raw)
    )
    verify(document, signature, _public(keys))


def test_a_signature_made_before_rfc_8785_still_verifies_and_a_tampered_one_fails(
    tmp_path: Path,
) -> None:
    keys = NodeKeys.load_or_create(tmp_path)
    document = {"org_id": "sanad", "version": 3, "ratio": 0.5, "whole": 2.0}
    old = _old_signature(keys, document)
    verify(document, old, _public(keys))
    with pytest.raises(Forbidden, match="does not match"):
        verify({**document, "version": 4}, old, _public(keys))
    # Labelled as the new form, the old bytes are not what it covers (2.0 is written 2).
    with pytest.raises(Forbidden, match="does not match"):
        verify(document, f"rfc8785:{old}", _public(keys))


def test_an_unknown_form_or_a_document_with_no_rfc_8785_form_is_refused_by_name(
    tmp_path: Path,
) -> None:
    keys = NodeKeys.load_or_create(tmp_path)
    _, signature = keys.sign({"a": 1})
    raw = signature.partition(":")[2]
    with pytest.raises(Forbidden, match="unknown canonical form 'json5'"):
        verify({"a": 1}, f"json5:{raw}", _public(keys))
    with pytest.raises(Forbidden, match="cannot be checked: NaN"):
        verify({"a": float("nan")}, signature, _public(keys))
    with pytest.raises(Invalid, match="beyond"):
        keys.sign({"a": 2**60})
