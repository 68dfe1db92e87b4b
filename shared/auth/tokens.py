"""The bearer token format: ``rls_`` and 32 random bytes, shown once and stored as a digest.

The prefix lets people and secret scanners recognise a leaked Relais token. The digest is a
plain SHA-256: the secret has 256 bits of entropy, so no slow hash is needed to protect it,
and a lookup by digest never compares secrets byte by byte in Python.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

PREFIX = "rls_"
TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet, without padding.
TOKEN_PATTERN = re.compile(r"^rls_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class NewToken:
    """A freshly made token: the secret for its holder, the digest for the database."""

    secret: str
    digest: bytes

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"NewToken(digest={self.digest.hex()[:12]}...)"


def new_token() -> NewToken:
    secret = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    return NewToken(secret, digest(secret))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def is_well_formed(secret: str) -> bool:
    return TOKEN_PATTERN.match(secret) is not None


def bearer_of(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, if it is one of ours."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not is_well_formed(credentials):
        return None
    return credentials
