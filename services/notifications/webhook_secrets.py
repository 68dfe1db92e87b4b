"""Webhook signing secrets: made in the Standard Webhooks form (``whsec_<base64>``) and kept
sealed at rest.

The database holds ``v1:<key id>:<base64 nonce + ciphertext>``: XChaCha20-Poly1305 (PyNaCl)
under a key derived from the node's ``RELAIS_SECRET_KEY``, with the webhook's id as associated
data, so a database dump alone gives no secret, and a sealed secret copied onto another
webhook's row does not open. The key id names which node key sealed it: after a change of
``RELAIS_SECRET_KEY`` a secret sealed before says so instead of failing obscurely.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from uuid import UUID

from nacl.exceptions import CryptoError
from nacl.secret import Aead

PREFIX = "whsec_"
FORM = "v1"


class SecretUnreadable(Exception):
    """A sealed secret that this node's key cannot open (sealed under another key, or altered)."""


def new_secret() -> str:
    """A fresh signing secret as Standard Webhooks writes them: ``whsec_`` and 32 random bytes
    in base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: the decoded bytes of a ``whsec_`` secret; for one made
    before (a bare URL-safe token), its UTF-8 bytes, which its receiver passes as bytes."""
    if secret.startswith(PREFIX):
        return base64.b64decode(secret[len(PREFIX) :])
    return secret.encode()


@dataclass(frozen=True)
class SecretSeal:
    """Seals and opens webhook secrets with a key derived from the node's secret key."""

    key: bytes

    @classmethod
    def from_node_secret(cls, node_secret: str) -> SecretSeal:
        derived = hmac.new(node_secret.encode(), b"relais webhook secrets v1", hashlib.sha256)
        return cls(derived.digest())

    @property
    def key_id(self) -> str:
        digest = hashlib.sha256(b"key id:" + self.key).digest()[:6]
        return base64.urlsafe_b64encode(digest).decode()

    def seal(self, webhook_id: UUID, secret: str) -> str:
        box = Aead(self.key).encrypt(secret.encode(), webhook_id.bytes)
        return f"{FORM}:{self.key_id}:{base64.b64encode(bytes(box)).decode()}"

    def open(self, webhook_id: UUID, sealed: str) -> str:
        form, key_id, body = [*sealed.split(":", 2), "", ""][:3]
        if form != FORM:
            raise SecretUnreadable("the webhook's secret is in an unknown form")
        if key_id != self.key_id:
            raise SecretUnreadable(
                "the webhook's secret was sealed under another node key "
                "(RELAIS_SECRET_KEY changed); register the webhook again"
            )
        try:
            return Aead(self.key).decrypt(base64.b64decode(body), webhook_id.bytes).decode()
        except (CryptoError, ValueError) as exc:
            raise SecretUnreadable("the webhook's sealed secret does not open") from exc
