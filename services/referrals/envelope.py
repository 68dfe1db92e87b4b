"""The sealed envelope of a referral (DESIGN.md §5), with PyNaCl; no primitive of our own.

- a fresh 32-byte data key per referral;
- the payload encrypted with XChaCha20-Poly1305 under that key, the clear header as
  associated data (a header moved onto another ciphertext fails to decrypt);
- the data key sealed (X25519 sealed box) for the recipient's and for the sender's own
  current encryption keys, as the directory publishes them;
- an Ed25519 signature by the sender over header and sealed payload, which the recipient
  checks against the directory before accepting anything (``shared.crypto``: RFC 8785 bytes,
  the legacy form still accepted).

The associated data (the header, the note's context) is the RFC 8785 form too: for their
fields (strings and nested objects of strings, fixed ASCII names) it is byte for byte the
legacy form, so envelopes sealed before still open (tests/unit/test_referral_envelope.py).

Destroying a node's sealed copy of the data key makes the payload unreadable there
(crypto-shredding): that is how consent revocation and retention erase data.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import Aead
from nacl.utils import random

from shared.canonical import jcs
from shared.contracts.referrals import Header, ReferralMessaged, ReferralOffered, SealedPayload
from shared.crypto import NodeKeys, verify
from shared.errors import Forbidden


class Unreadable(Forbidden):
    """The envelope cannot be opened with this node's key (tampered, or not for us)."""


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _signed(header: Header, sealed: SealedPayload) -> dict[str, Any]:
    return {"header": header.model_dump(mode="json"), "sealed": sealed.model_dump(mode="json")}


def seal(
    header: Header,
    payload: dict[str, Any],
    *,
    keys: NodeKeys,
    recipient_public: str,
    sender_public: str,
) -> ReferralOffered:
    """Encrypt and sign a new referral's payload for its recipient and for its sender."""
    data_key = random(Aead.KEY_SIZE)
    message = Aead(data_key).encrypt(
        json.dumps(payload, ensure_ascii=False).encode(), jcs(header.model_dump(mode="json"))
    )
    sealed = SealedPayload(
        nonce=b64(message.nonce),
        ciphertext=b64(message.ciphertext),
        key_for_recipient=b64(_seal_key(data_key, recipient_public)),
        key_for_sender=b64(_seal_key(data_key, sender_public)),
    )
    _, signature = keys.sign(_signed(header, sealed))
    return ReferralOffered(header=header, sealed=sealed, signature=signature)


def _seal_key(data_key: bytes, public_b64: str) -> bytes:
    return SealedBox(PublicKey(base64.b64decode(public_b64))).encrypt(data_key)


def check_signature(offer: ReferralOffered, sender_signing_public: str) -> None:
    """``Forbidden`` unless the sender's key signed exactly this header and sealed payload."""
    verify(_signed(offer.header, offer.sealed), offer.signature, sender_signing_public)


def data_key(sealed_key: str, private: PrivateKey) -> bytes:
    """Unseal a node's copy of the data key with its private X25519 key."""
    try:
        return SealedBox(private).decrypt(base64.b64decode(sealed_key))
    except (CryptoError, ValueError) as exc:
        raise Unreadable("the data key is not sealed for this node's key") from exc


def open_payload(header: Header, nonce: str, ciphertext: str, key: bytes) -> dict[str, Any]:
    """Decrypt a payload; ``Unreadable`` if the ciphertext or its header was altered."""
    try:
        plain = Aead(key).decrypt(
            base64.b64decode(ciphertext),
            jcs(header.model_dump(mode="json")),
            base64.b64decode(nonce),
        )
    except (CryptoError, ValueError) as exc:
        raise Unreadable("the payload does not decrypt: altered on the way") from exc
    document = json.loads(plain)
    if not isinstance(document, dict):
        raise Unreadable("the payload is not a set of fields")
    return document


def _note_context(referral_id: str, status: str, by_org: str) -> bytes:
    return jcs({"referral_id": referral_id, "status": status, "by_org": by_org})


def seal_note(key: bytes, note: str, *, referral_id: str, status: str, by_org: str) -> str:
    """A free-text note of a step, readable only by the two organisations."""
    message = Aead(key).encrypt(note.encode(), _note_context(referral_id, status, by_org))
    return b64(bytes(message))


def open_note(key: bytes, sealed: str, *, referral_id: str, status: str, by_org: str) -> str:
    raw = base64.b64decode(sealed)
    try:
        return (
            Aead(key)
            .decrypt(
                raw[Aead.NONCE_SIZE :],
                _note_context(referral_id, status, by_org),
                raw[: Aead.NONCE_SIZE],
            )
            .decode()
        )
    except (CryptoError, ValueError) as exc:
        raise Unreadable("the note does not decrypt") from exc


def _message_context(referral_id: str, message_id: str, by_org: str) -> bytes:
    # Its own shape ("message_id"), so a note and a message never open as each other.
    return jcs({"referral_id": referral_id, "message_id": message_id, "by_org": by_org})


def seal_message(key: bytes, text: str, *, referral_id: str, message_id: str, by_org: str) -> str:
    """A message of the referral's conversation, readable only by the two organisations: moved
    onto another referral, message or author, it no longer opens."""
    sealed = Aead(key).encrypt(text.encode(), _message_context(referral_id, message_id, by_org))
    return b64(bytes(sealed))


def open_message(key: bytes, sealed: str, *, referral_id: str, message_id: str, by_org: str) -> str:
    try:
        raw = base64.b64decode(sealed)
        return (
            Aead(key)
            .decrypt(
                raw[Aead.NONCE_SIZE :],
                _message_context(referral_id, message_id, by_org),
                raw[: Aead.NONCE_SIZE],
            )
            .decode()
        )
    except (CryptoError, ValueError) as exc:
        raise Unreadable("the message does not decrypt") from exc


def sign_message(keys: NodeKeys, unsigned: dict[str, Any]) -> ReferralMessaged:
    """The message event, signed by this node over every field but the signature, in the form
    the event carries them (a time as the receiver reads it back, not as it was given)."""
    draft = ReferralMessaged.model_validate({**unsigned, "signature": ""})
    _, signature = keys.sign(draft.signed_part())
    return draft.model_copy(update={"signature": signature})


def check_message_signature(message: ReferralMessaged, sender_signing_public: str) -> None:
    """``Forbidden`` unless the writer's node signed exactly this message."""
    verify(message.signed_part(), message.signature, sender_signing_public)
