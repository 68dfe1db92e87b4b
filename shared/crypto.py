"""An organisation's key pairs, made and kept on its own node (DESIGN.md §5).

Ed25519 signs what the node sends (the hub checks a profile change against the key the
directory holds); X25519 receives the data keys of referrals (the referrals issue). Private
keys are files readable by the node's user only and never leave the node; the public halves,
with key ids and validity, are published in the directory. PyNaCl does the cryptography.

A signature is ``rfc8785:<base64 Ed25519>`` over the RFC 8785 bytes of the document
(``shared.canonical``); a bare ``<base64>`` is one made before, over the legacy form, and is
still accepted. The prefix is not covered by the signature and needs not be: the two forms give
the same bytes only for the same document, so relabelling one cannot forge anything.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from shared import canonical
from shared.errors import Forbidden

SIGNING_FILE, ENCRYPTION_FILE = "signing.key", "encryption.key"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def key_id(public: bytes) -> str:
    """A short, stable name for a public key: the start of its SHA-256, URL-safe."""
    return base64.urlsafe_b64encode(hashlib.sha256(public).digest()[:12]).decode().rstrip("=")


@dataclass(frozen=True)
class NodeKeys:
    signing: SigningKey
    encryption: PrivateKey
    created_at: datetime

    @classmethod
    def load_or_create(cls, folder: Path) -> NodeKeys:
        """The node's keys from ``folder``, made there (readable by this user only) if absent."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        signing_path, encryption_path = folder / SIGNING_FILE, folder / ENCRYPTION_FILE
        if not signing_path.exists():
            _write_secret(signing_path, bytes(SigningKey.generate()))
        if not encryption_path.exists():
            _write_secret(encryption_path, bytes(PrivateKey.generate()))
        created = datetime.fromtimestamp(signing_path.stat().st_mtime, UTC)
        return cls(
            SigningKey(signing_path.read_bytes()), PrivateKey(encryption_path.read_bytes()), created
        )

    @property
    def signing_public(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def encryption_public(self) -> bytes:
        return bytes(self.encryption.public_key)

    def public_keys(self) -> list[dict[str, str]]:
        """The public halves as the directory publishes them (``PublicKey`` fields)."""
        since = self.created_at.isoformat()
        return [
            {
                "key_id": key_id(self.signing_public),
                "use": "ed25519",
                "public_key": _b64(self.signing_public),
                "valid_from": since,
            },
            {
                "key_id": key_id(self.encryption_public),
                "use": "x25519",
                "public_key": _b64(self.encryption_public),
                "valid_from": since,
            },
        ]

    def sign(self, document: Any) -> tuple[str, str]:
        """(key id, ``rfc8785:<base64>`` signature) over the RFC 8785 form of ``document``;
        ``canonical.NotCanonical`` (invalid input) if it has none."""
        signature = self.signing.sign(canonical.encode(document)).signature
        return key_id(self.signing_public), f"{canonical.CURRENT}:{_b64(signature)}"


def verify(document: Any, signature: str, public_key: str) -> None:
    """Check a signature made by ``sign``, now or before RFC 8785 (a bare base64); ``Forbidden``
    if it does not hold, naming why when the document or the signature cannot be read."""
    form, _, raw = signature.rpartition(":")
    try:
        signed = canonical.encode(document, form or canonical.LEGACY)
    except canonical.NotCanonical as exc:
        raise Forbidden(f"the signature cannot be checked: {exc.detail}") from None
    except (TypeError, ValueError) as exc:  # legacy: json.dumps refusing, a lone surrogate
        raise Forbidden("the signature cannot be checked: the document is not JSON") from exc
    try:
        VerifyKey(base64.b64decode(public_key)).verify(signed, base64.b64decode(raw))
    except (BadSignatureError, ValueError) as exc:
        raise Forbidden("the signature does not match the sender's key") from exc


def _write_secret(path: Path, raw: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(raw)
