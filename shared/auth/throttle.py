"""Login attempts limited per account and per client address, and API requests per token.

Each wrong password answers a little later than the one before (``login_delay_seconds`` times
the account's failures so far, capped), and the ``login_attempts``-th failure within a lock
period locks the account for ``login_lock_seconds``: every attempt, even with the right
password, gets 429 with ``Retry-After`` until then, before any hashing. A client address is
allowed ``login_address_attempts`` failures over any accounts (more: an office shares one
connection), then locked the same way: that stops one caller trying a few passwords on every
account. Unknown usernames are counted and locked like known ones, so that a lock does not tell
who has an account here.

The login counts live in the node's PostgreSQL (``auth.login_attempts``, ``auth.login_locks``,
migration 0005): every process of the node, and the next one after a restart, sees the same
failures and locks. An attempt is counted when its password check starts, and forgotten if it
does not fail (the right password, the database down): attempts sent together, to one process
or to several, cannot pass the limit while their hashes run. An attempt cut off half-way (the
process killed) stays counted, on the safe side, until the lock period ends. The per-token
request rate stays in each process's memory (``limits``' moving window): it shapes load, and a
second process only gives a token its own allowance there.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from fastapi import Request
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from shared.auth import domain, store
from shared.auth.domain import User
from shared.contracts.audit import Outcome
from shared.db import Connection, Pool
from shared.errors import TooManyRequests, Unauthenticated
from shared.settings import NodeSettings

LOCKED = "too many attempts: try again later"
RATE_LIMITED = "too many requests for this token: slow down"
MAX_DELAY_SECONDS = 5.0


class Scope(StrEnum):
    """What a lock holds: one account, or every login from one client address."""

    ACCOUNT = "account"
    ADDRESS = "address"


@dataclass
class Attempt:
    """One login attempt in progress: its counted rows, by scope, until it ends."""

    keys: dict[Scope, bytes]
    rows: dict[Scope, int]
    ended: bool = field(default=False)


class Throttle:
    """The counts of one node: the API's and the login form's attempts together, in the
    node's database; the per-token rate in this process."""

    def __init__(self, settings: NodeSettings, storage: MemoryStorage | None = None) -> None:
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self.period = timedelta(seconds=settings.login_lock_seconds)
        self.allowed = {
            Scope.ACCOUNT: settings.login_attempts,
            Scope.ADDRESS: settings.login_address_attempts,
        }
        self.per_token = RateLimitItemPerMinute(settings.api_requests_per_minute)

    def _key(self, scope: Scope, value: str) -> bytes:
        secret = self.settings.secret_key.encode()
        return hmac.new(secret, f"{scope.value}:{value}".encode(), hashlib.sha256).digest()

    async def _serialised(self, conn: Connection, keys: dict[Scope, bytes]) -> None:
        """Hold the keys' advisory locks for the transaction (in one order: no deadlock)."""
        for key in sorted(keys.values()):
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), 0))", key
            )

    @asynccontextmanager
    async def attempt(self, pool: Pool, account: str, address: str) -> AsyncIterator[Attempt]:
        """One login attempt, around the password's check: ``TooManyRequests`` at once while
        the account or the address is locked, or while as many attempts are being checked or
        have failed as the account or address may fail (a burst sent together cannot slip past
        the limit while the hashes run). An attempt that ends otherwise than in ``failed`` or
        ``succeeded`` (the database down, an error) counts for nothing."""
        keys = {Scope.ACCOUNT: self._key(Scope.ACCOUNT, account)}
        keys[Scope.ADDRESS] = self._key(Scope.ADDRESS, address)
        async with pool.acquire() as conn, conn.transaction():
            await self._serialised(conn, keys)
            locked = await conn.fetchval(
                "SELECT ceil(extract(epoch FROM max(until) - now())) FROM auth.login_locks"
                " WHERE key = ANY($1) AND until > now()",
                list(keys.values()),
            )
            if locked is not None:
                raise TooManyRequests(LOCKED, retry_after=max(1, int(locked)))
            for scope, key in keys.items():
                if await self._counted(conn, key) >= self.allowed[scope]:
                    raise TooManyRequests(LOCKED, retry_after=1)  # once those are answered
            rows = {}
            for scope, key in keys.items():
                rows[scope] = await conn.fetchval(
                    "INSERT INTO auth.login_attempts (key) VALUES ($1) RETURNING id", key
                )
        attempt = Attempt(keys, rows)
        try:
            yield attempt
        finally:
            if not attempt.ended:
                async with pool.acquire() as conn:
                    await conn.execute(
                        "DELETE FROM auth.login_attempts WHERE id = ANY($1)", list(rows.values())
                    )

    async def _counted(self, conn: Connection, key: bytes) -> int:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM auth.login_attempts WHERE key = $1 AND at > now() - $2::interval",
            key,
            self.period,
        )
        return count

    async def failed(self, pool: Pool, attempt: Attempt) -> list[Scope]:
        """A wrong password, within its ``attempt``: it stays counted against the account and
        the address; the locks that fall with it (none: after the growing delay)."""
        attempt.ended = True
        fallen, so_far = [], 0
        async with pool.acquire() as conn, conn.transaction():
            await self._serialised(conn, attempt.keys)
            await conn.execute(
                "DELETE FROM auth.login_attempts WHERE at <= now() - $1::interval", self.period
            )
            for scope, key in attempt.keys.items():
                counted = await self._counted(conn, key)
                if scope is Scope.ACCOUNT:
                    so_far = counted
                if counted < self.allowed[scope]:
                    continue
                # Only the attempt that takes the lock reports it (one audit record per lock).
                taken = await conn.fetchval(
                    "INSERT INTO auth.login_locks AS held (key, until)"
                    " VALUES ($1, now() + $2::interval)"
                    " ON CONFLICT (key) DO UPDATE SET until = excluded.until"
                    "  WHERE held.until <= now()"
                    " RETURNING true",
                    key,
                    self.period,
                )
                if taken:
                    # A fresh count once the lock ends.
                    await conn.execute("DELETE FROM auth.login_attempts WHERE key = $1", key)
                    fallen.append(scope)
        if not fallen:
            await asyncio.sleep(self.delay(so_far))
        return fallen

    def delay(self, failures: int) -> float:
        """How much later the answer to the ``failures``-th wrong password comes."""
        return min(MAX_DELAY_SECONDS, self.settings.login_delay_seconds * failures)

    async def succeeded(self, pool: Pool, attempt: Attempt) -> None:
        """The right password, within its ``attempt``: the account's failures are forgotten
        (the address's are not, or one account of their own would let a caller try others'
        without end); this attempt itself was no failure of the address either."""
        attempt.ended = True
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM auth.login_attempts WHERE key = $1 OR id = $2",
                attempt.keys[Scope.ACCOUNT],
                attempt.rows[Scope.ADDRESS],
            )

    async def check_token(self, token_id: str) -> None:
        """One more request with this API or access token: ``TooManyRequests`` past the rate."""
        key = f"token:{token_id}"
        if not await self.limiter.hit(self.per_token, key):
            raise TooManyRequests(
                RATE_LIMITED, retry_after=await self._reset_in(self.per_token, key)
            )

    async def _reset_in(self, item: RateLimitItem, key: str) -> int:
        """Whole seconds until ``key`` has room again under ``item`` (at least one)."""
        stats = await self.limiter.get_window_stats(item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


def of(request: Request, settings: NodeSettings) -> Throttle:
    """The node's throttle: one per app, which the API and the login page share."""
    state = request.app.state
    throttle: Throttle | None = getattr(state, "auth_throttle", None)
    if throttle is None:
        throttle = state.auth_throttle = Throttle(settings)
    return throttle


async def authenticate(
    request: Request, pool: Pool, settings: NodeSettings, username: str, password: str
) -> User:
    """``store.authenticate`` behind the throttle: ``TooManyRequests`` while locked (before any
    hashing), the growing delay after a wrong password, and the lock audited when it falls."""
    throttle = of(request, settings)
    account = domain.normalise_username(username)
    address = request.client.host if request.client is not None else "unknown"
    async with throttle.attempt(pool, account, address) as attempt:
        try:
            user = await store.authenticate(pool, username, password)
        except Unauthenticated:
            fallen = await throttle.failed(pool, attempt)
            if not fallen:
                raise
            known = await store.get_user(pool, account) is not None
            for scope in fallen:
                await store.audit(
                    pool,
                    "system:auth",
                    "session.login_locked",
                    f"user:{account}" if known else "user:unknown",
                    # Kept as a digest only: neither the address nor the typed name in clear.
                    {
                        "lock": scope.value,
                        "seconds": settings.login_lock_seconds,
                        "account": account,
                        "address": address,
                    },
                    Outcome.REFUSED,
                    org=settings.org,
                )
            raise TooManyRequests(LOCKED, retry_after=settings.login_lock_seconds) from None
        await throttle.succeeded(pool, attempt)
    return user
