"""Webhook secrets at rest: sealed so that a database dump gives none, opened only by the node
key that sealed them and only on the webhook's own row."""

from __future__ import annotations

import base64
from uuid import uuid4

import pytest

from services.notifications.webhook_secrets import (
    SecretSeal,
    SecretUnreadable,
    new_secret,
    signing_key,
)

SEAL = SecretSeal.from_node_secret("a-node-secret-of-sixteen-or-more")


def test_a_new_secret_is_in_the_standard_webhooks_form() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(signing_key(secret)) == 32
    assert signing_key(secret) == base64.b64decode(secret[6:])
    assert new_secret() != secret


def test_a_sealed_secret_opens_on_its_own_row_only() -> None:
    secret, hook = new_secret(), uuid4()
    sealed = SEAL.seal(hook, secret)
    assert secret not in sealed and secret[6:] not in sealed
    assert SEAL.open(hook, sealed) == secret
    with pytest.raises(SecretUnreadable, match="does not open"):
        SEAL.open(uuid4(), sealed)  # copied onto another webhook's row


def test_another_node_key_says_the_secret_was_sealed_under_another() -> None:
    sealed = SEAL.seal(hook := uuid4(), new_secret())
    other = SecretSeal.from_node_secret("another-node-secret-sixteen+")
    with pytest.raises(SecretUnreadable, match="RELAIS_SECRET_KEY changed"):
        other.open(hook, sealed)


def test_an_altered_sealed_secret_does_not_open() -> None:
    hook = uuid4()
    form, key_id, body = SEAL.seal(hook, new_secret()).split(":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(SecretUnreadable):
        SEAL.open(hook, f"{form}:{key_id}:{base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(SecretUnreadable, match="unknown form"):
        SEAL.open(hook, "plain-text")


def test_a_secret_from_before_keys_with_its_text() -> None:
    assert signing_key("an-old-token") == b"an-old-token"
