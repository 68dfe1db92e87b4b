"""Password hashing with argon2id, and the re-hash that follows a change of its parameters.

The work is CPU-bound (about a core for a tenth of a second, by design, and 64 MiB): async
callers hand it to ``in_turn``, which runs it off the event loop on a few threads of its own.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults are RFC 9106's low-memory profile for argon2id.
HASHER = PasswordHasher()
# One core is always left to the rest of the node (on a 2-core node: one hash at a time), so
# that a burst of logins queues here instead of starving the event loop and the database.
HASHING_AT_ONCE = max(1, (os.cpu_count() or 1) - 1)
# Threads of its own, not asyncio's default executor, which the rest of the node shares; not
# an asyncio.Semaphore either, which would belong to one event loop. A waiter that gives up
# (a client gone) is taken out of the queue before it costs a hash.
_HASHERS = ThreadPoolExecutor(max_workers=HASHING_AT_ONCE, thread_name_prefix="relais-argon2")

T = TypeVar("T")


async def in_turn(work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` (CPU-bound password work) on the hashing threads, awaiting its turn."""
    return await asyncio.get_running_loop().run_in_executor(_HASHERS, work, *args)


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
