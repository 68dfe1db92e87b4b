"""A node's keys: made once, kept private, and their signatures checked."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shared.crypto import NodeKeys, verify
from shared.errors import Forbidden


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
