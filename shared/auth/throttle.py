"""Login attempts limited per account and per client address, and API requests per token.

Each wrong password answers a little later than the one before (``login_delay_seconds`` times
the account's failures so far, capped), and the ``login_attempts``-th failure within a lock
period locks the account for ``login_lock_seconds``: every attempt, even with the right
password, gets 429 with ``Retry-After`` until then, before any hashing. A client address is
allowed ``login_address_attempts`` failures over any accounts (more: an office shares one
connection), then locked the same way: that stops one caller trying a few passwords on every
account. Unknown usernames are counted and locked like known ones, so that a lock does not tell
who has an account here.

The counts live in the node's memory (``limits``' moving windows): a restart forgets them, which
only gives an attacker back what one lock period would have.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum

from fastapi import Request
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from shared.auth import domain, store
from shared.auth.domain import User
from shared.contracts.audit import Outcome
from shared.db import Pool
from shared.errors import TooManyRequests, Unauthenticated
from shared.settings import NodeSettings

LOCKED = "too many attempts: try again later"
RATE_LIMITED = "too many requests for this token: slow down"
MAX_DELAY_SECONDS = 5.0


class Scope(StrEnum):
    """What a lock holds: one account, or every login from one client address."""

    ACCOUNT = "account"
    ADDRESS = "address"


class Throttle:
    """The counts of one node (one app): the API's and the login form's attempts together."""

    def __init__(self, settings: NodeSettings, storage: MemoryStorage | None = None) -> None:
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        period = settings.login_lock_seconds
        self.failures: dict[Scope, RateLimitItem] = {
            Scope.ACCOUNT: RateLimitItemPerSecond(settings.login_attempts, period),
            Scope.ADDRESS: RateLimitItemPerSecond(settings.login_address_attempts, period),
        }
        # A lock is one entry of a window as long as the lock: it holds until that entry expires.
        self.lock = RateLimitItemPerSecond(1, period)
        self.per_token = RateLimitItemPerMinute(settings.api_requests_per_minute)
        self._in_flight: Counter[str] = Counter()  # attempts per account, password being checked

    @asynccontextmanager
    async def attempt(self, account: str, address: str) -> AsyncIterator[None]:
        """One login attempt, around the password's check: ``TooManyRequests`` at once while
        the account or the address is locked, or while as many attempts at the account are in
        flight as it has failures left (a burst sent together cannot slip past the limit while
        the hashes run). An attempt that ends otherwise than in ``failed`` (the right password,
        the database down) counts for nothing."""
        keys = {Scope.ACCOUNT: f"account:{account}", Scope.ADDRESS: f"address:{address}"}
        for key in keys.values():
            if not await self.limiter.test(self.lock, f"lock:{key}"):
                raise TooManyRequests(
                    LOCKED, retry_after=await self._reset_in(self.lock, f"lock:{key}")
                )
        left = await self.limiter.get_window_stats(
            self.failures[Scope.ACCOUNT], keys[Scope.ACCOUNT]
        )
        if self._in_flight[account] >= left.remaining:
            raise TooManyRequests(LOCKED, retry_after=1)  # as soon as those have been answered
        self._in_flight[account] += 1
        try:
            yield
        finally:
            self._in_flight[account] -= 1
            if not self._in_flight[account]:
                del self._in_flight[account]

    async def failed(self, account: str, address: str) -> list[Scope]:
        """A wrong password, within its ``attempt``: counted against the account and the
        address; the locks that fall with it (none: after the growing delay)."""
        keys = {Scope.ACCOUNT: f"account:{account}", Scope.ADDRESS: f"address:{address}"}
        for scope, key in keys.items():
            await self.limiter.hit(self.failures[scope], key)
        so_far, fallen = 0, []
        for scope, key in keys.items():
            failures = self.failures[scope]
            window = await self.limiter.get_window_stats(failures, key)
            if scope is Scope.ACCOUNT:
                so_far = failures.amount - window.remaining
            # Only the attempt that takes the lock reports it (one audit record per lock).
            if window.remaining == 0 and await self.limiter.hit(self.lock, f"lock:{key}"):
                await self.limiter.clear(failures, key)  # a fresh count once the lock ends
                fallen.append(scope)
        if not fallen:
            await asyncio.sleep(self.delay(so_far))
        return fallen

    def delay(self, failures: int) -> float:
        """How much later the answer to the ``failures``-th wrong password comes."""
        return min(MAX_DELAY_SECONDS, self.settings.login_delay_seconds * failures)

    async def succeeded(self, account: str) -> None:
        """The right password, within its ``attempt``: the account's failures are forgotten
        (the address's are not, or one account of their own would let a caller try others'
        without end)."""
        await self.limiter.clear(self.failures[Scope.ACCOUNT], f"account:{account}")

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
    async with throttle.attempt(account, address):
        try:
            user = await store.authenticate(pool, username, password)
        except Unauthenticated:
            fallen = await throttle.failed(account, address)
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
        await throttle.succeeded(account)
    return user
