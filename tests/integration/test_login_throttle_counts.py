"""The login throttle's counts in a real PostgreSQL (auth schema, migration 0005): when an
account or an address is locked, for how long, what a right password forgets, attempts in
flight together; and the same counts seen by two throttles on one database, as two processes
of a node (or a restarted one) see them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from shared import db
from shared.auth.throttle import Scope, Throttle
from shared.errors import TooManyRequests
from shared.settings import DEMO_SECRET, NodeSettings


def settings(database_url: str, **changes: object) -> NodeSettings:
    base = NodeSettings(
        node_id="sanad",
        org="sanad",
        nats_url="nats://127.0.0.1:1",
        database_url=database_url,
        secret_key=DEMO_SECRET,
        demo=True,
        login_attempts=3,
        login_address_attempts=5,
        login_lock_seconds=60,
        login_delay_seconds=0,
    )
    return base.model_copy(update=changes)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[db.Pool]:
    pool = await db.create_pool(database_url, max_size=4)
    yield pool
    await pool.close()


async def fail(
    throttle: Throttle, pool: db.Pool, account: str, address: str = "192.0.2.1"
) -> list[Scope]:
    """One wrong password, the way ``throttle.authenticate`` counts it."""
    async with throttle.attempt(pool, account, address) as attempt:
        return await throttle.failed(pool, attempt)


async def admitted(
    throttle: Throttle, pool: db.Pool, account: str, address: str = "192.0.2.1"
) -> None:
    """An attempt let through to the password's check (``TooManyRequests`` if it is not)."""
    async with throttle.attempt(pool, account, address):
        pass


class TestLoginLock:
    async def test_the_last_allowed_failure_locks_the_account_even_for_the_right_password(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url))
        assert await fail(throttle, pool, "amina") == []
        assert await fail(throttle, pool, "amina") == []
        assert await fail(throttle, pool, "amina") == [Scope.ACCOUNT]
        with pytest.raises(TooManyRequests) as locked:
            await admitted(throttle, pool, "amina")  # refused before any password is checked
        assert 59 <= locked.value.retry_after <= 60

    async def test_a_lock_holds_one_account_not_its_neighbours(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url))
        for _ in range(3):
            await fail(throttle, pool, "amina", "192.0.2.1")
        await admitted(throttle, pool, "karim", "192.0.2.2")  # not refused
        with pytest.raises(TooManyRequests):
            await admitted(throttle, pool, "amina", "192.0.2.2")  # from elsewhere too

    async def test_the_right_password_forgets_the_accounts_failures(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url))
        for _ in range(2):
            await fail(throttle, pool, "amina")
        async with throttle.attempt(pool, "amina", "192.0.2.1") as attempt:
            await throttle.succeeded(pool, attempt)
        for _ in range(2):
            assert await fail(throttle, pool, "amina") == []

    async def test_an_attempt_that_neither_failed_nor_succeeded_counts_for_nothing(
        self, pool: db.Pool, database_url: str
    ) -> None:
        """A login while the password store is down: the person tries again, not locked."""
        throttle = Throttle(settings(database_url))
        for _ in range(5):
            with pytest.raises(ConnectionError):
                async with throttle.attempt(pool, "amina", "192.0.2.1"):
                    raise ConnectionError("the database is down")
        assert await fail(throttle, pool, "amina") == []

    async def test_one_address_trying_many_accounts_is_locked(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url))
        fallen = [await fail(throttle, pool, f"user{n}", "192.0.2.9") for n in range(5)]
        assert fallen == [[], [], [], [], [Scope.ADDRESS]]
        with pytest.raises(TooManyRequests):
            await admitted(throttle, pool, "someone.else", "192.0.2.9")
        await admitted(throttle, pool, "someone.else", "192.0.2.10")  # another address is not

    async def test_attempts_in_flight_together_cannot_pass_the_limit(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url))
        await fail(throttle, pool, "amina")  # two failures left
        async with AsyncExitStack() as in_flight:
            for _ in range(2):
                await in_flight.enter_async_context(throttle.attempt(pool, "amina", "192.0.2.1"))
            with pytest.raises(TooManyRequests) as refused:
                await admitted(throttle, pool, "amina")  # a third: its hash is not even started
            assert refused.value.retry_after == 1
            await admitted(throttle, pool, "karim")  # the others' are not held up
        await admitted(throttle, pool, "amina")  # those answered, there is room again

    async def test_the_lock_ends_after_its_period_with_a_fresh_count(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url, login_lock_seconds=1))
        for _ in range(3):
            await fail(throttle, pool, "amina")
        with pytest.raises(TooManyRequests) as locked:
            await admitted(throttle, pool, "amina", "192.0.2.1")
        assert locked.value.retry_after == 1
        await asyncio.sleep(1.1)
        assert await fail(throttle, pool, "amina") == []  # the first of three again

    async def test_a_wrong_password_answers_after_the_growing_delay(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url, login_delay_seconds=0.2))
        began = time.monotonic()
        await fail(throttle, pool, "amina")
        first = time.monotonic() - began
        began = time.monotonic()
        await fail(throttle, pool, "amina")
        second = time.monotonic() - began
        assert first >= 0.2 and second >= 0.4  # lower bounds: a loaded machine only adds

    async def test_neither_names_nor_addresses_are_kept_in_clear(
        self, pool: db.Pool, database_url: str
    ) -> None:
        throttle = Throttle(settings(database_url))
        for _ in range(3):
            await fail(throttle, pool, "amina", "198.51.100.7")
        rows = await pool.fetch(
            "SELECT key::text AS k FROM auth.login_attempts"
            " UNION ALL SELECT key::text FROM auth.login_locks"
        )
        assert rows  # the address's failures and the account's lock
        kept = " ".join(row["k"] for row in rows)
        assert "amina" not in kept and "198.51.100.7" not in kept
        assert "616d696e61" not in kept  # nor their bytes


class TestSharedByTheNodesProcesses:
    async def test_two_throttles_on_one_database_count_together(self, database_url: str) -> None:
        """Two processes of one node, each its own pool and throttle: the failures made at
        either count towards one lock, which both then hold."""
        first_pool = await db.create_pool(database_url, max_size=2)
        second_pool = await db.create_pool(database_url, max_size=2)
        try:
            first = Throttle(settings(database_url))
            second = Throttle(settings(database_url))
            assert await fail(first, first_pool, "amina") == []
            assert await fail(second, second_pool, "amina") == []
            assert await fail(first, first_pool, "amina") == [Scope.ACCOUNT]
            for throttle, pool in ((first, first_pool), (second, second_pool)):
                with pytest.raises(TooManyRequests):
                    await admitted(throttle, pool, "amina")
            # A restarted process (a new throttle, nothing in memory) still holds the lock.
            with pytest.raises(TooManyRequests):
                await admitted(Throttle(settings(database_url)), second_pool, "amina")
        finally:
            await first_pool.close()
            await second_pool.close()

    async def test_a_burst_split_between_two_processes_cannot_pass_the_limit(
        self, database_url: str
    ) -> None:
        first_pool = await db.create_pool(database_url, max_size=2)
        second_pool = await db.create_pool(database_url, max_size=2)
        try:
            first = Throttle(settings(database_url))
            second = Throttle(settings(database_url))
            async with AsyncExitStack() as in_flight:
                for throttle, pool in ((first, first_pool), (second, second_pool)):
                    await in_flight.enter_async_context(throttle.attempt(pool, "amina", "a"))
                await in_flight.enter_async_context(first.attempt(first_pool, "amina", "b"))
                with pytest.raises(TooManyRequests):  # three being checked: a fourth waits
                    await admitted(second, second_pool, "amina", "c")
        finally:
            await first_pool.close()
            await second_pool.close()
