"""Password hashing with argon2id, and the re-hash that follows a change of its parameters.

The work is CPU-bound (tens of milliseconds by design): async callers run it in a thread.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults are RFC 9106's low-memory profile for argon2id.
HASHER = PasswordHasher()


@dataclass(frozen=True)
class Verdict:
    """Whether a password matched, and the new hash to store when the parameters changed."""

    ok: bool
    rehash: str | None = None


def hash_password(password: str, hasher: PasswordHasher = HASHER) -> str:
    return hasher.hash(password)


def verify_password(stored: str, password: str, hasher: PasswordHasher = HASHER) -> Verdict:
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return Verdict(ok=False)
    if hasher.check_needs_rehash(stored):
        return Verdict(ok=True, rehash=hasher.hash(password))
    return Verdict(ok=True)


@functools.cache
def _decoy_hash() -> str:
    return HASHER.hash("relais decoy password, never anyone's")


def spend_verification_time(password: str) -> None:
    """Verify against a decoy, so that an unknown username takes as long as a wrong password."""
    verify_password(_decoy_hash(), password)
