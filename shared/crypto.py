"""An organisation's key pairs, made and kept on its own node (DESIGN.md §5).

Ed25519 signs what the node sends (the hub checks a profile change against the key the
directory holds); X25519 receives the data keys of referrals (the referrals issue). Private
keys are files readable by the node's user only and never leave the node; the public halves,
with key ids and validity, are published in the directory. PyNaCl does the cryptography.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from shared.errors import Forbidden

SIGNING_FILE, ENCRYPTION_FILE = "signing.key", "encryption.key"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def key_id(public: bytes) -> str:
    """A short, stable name for a public key: the start of its SHA-256, URL-safe."""
    return base64.urlsafe_b64encode(hashlib.sha256(public).digest()[:12]).decode().rstrip("=")


def canonical(document: Any) -> bytes:
    """The bytes a signature covers: JSON with sorted keys and no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
        """(key id, base64 signature) over the canonical form of ``document``."""
        signature = self.signing.sign(canonical(document)).signature
        return key_id(self.signing_public), _b64(signature)


def verify(document: Any, signature: str, public_key: str) -> None:
    """Check a signature made by ``sign``; ``Forbidden`` if it does not hold."""
    try:
        VerifyKey(base64.b64decode(public_key)).verify(
            canonical(document), base64.b64decode(signature)
        )
    except (BadSignatureError, ValueError) as exc:
        raise Forbidden("the signature does not match the sender's key") from exc


def _write_secret(path: Path, raw: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(raw)
