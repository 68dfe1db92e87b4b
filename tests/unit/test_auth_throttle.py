"""The throttle's counts without a node: when an account or an address is locked, for how long,
what a right password forgets, and the per-token request rate; password hashing kept off the
event loop, a bounded number at a time; and the 429 answer, with when to come back."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import AsyncExitStack

import pytest

from shared import problems
from shared.auth import passwords
from shared.auth.throttle import Scope, Throttle
from shared.errors import BY_TYPE, TooManyRequests
from shared.settings import DEMO_SECRET, NodeSettings


def settings(**changes: object) -> NodeSettings:
    base = NodeSettings(
        node_id="sanad",
        org="sanad",
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        secret_key=DEMO_SECRET,
        demo=True,
        login_attempts=3,
        login_address_attempts=5,
        login_lock_seconds=60,
        login_delay_seconds=0,
    )
    return base.model_copy(update=changes)


async def fail(throttle: Throttle, account: str, address: str = "192.0.2.1") -> list[Scope]:
    """One wrong password, the way ``throttle.authenticate`` counts it."""
    async with throttle.attempt(account, address):
        return await throttle.failed(account, address)


async def admitted(throttle: Throttle, account: str, address: str = "192.0.2.1") -> None:
    """An attempt let through to the password's check (``TooManyRequests`` if it is not)."""
    async with throttle.attempt(account, address):
        pass


class TestLoginLock:
    async def test_the_last_allowed_failure_locks_the_account_even_for_the_right_password(
        self,
    ) -> None:
        throttle = Throttle(settings())
        assert await fail(throttle, "amina") == []
        assert await fail(throttle, "amina") == []
        assert await fail(throttle, "amina") == [Scope.ACCOUNT]
        with pytest.raises(TooManyRequests) as locked:
            await admitted(throttle, "amina")  # refused before any password is checked
        assert 59 <= locked.value.retry_after <= 60

    async def test_a_lock_holds_one_account_not_its_neighbours(self) -> None:
        throttle = Throttle(settings())
        for _ in range(3):
            await fail(throttle, "amina", "192.0.2.1")
        await admitted(throttle, "karim", "192.0.2.2")  # not refused
        with pytest.raises(TooManyRequests):
            await admitted(throttle, "amina", "192.0.2.2")  # from elsewhere too

    async def test_the_right_password_forgets_the_accounts_failures(self) -> None:
        throttle = Throttle(settings())
        for _ in range(2):
            await fail(throttle, "amina")
        async with throttle.attempt("amina", "192.0.2.1"):
            await throttle.succeeded("amina")
        for _ in range(2):
            assert await fail(throttle, "amina") == []

    async def test_an_attempt_that_neither_failed_nor_succeeded_counts_for_nothing(self) -> None:
        """A login while the database is down: the person tries again, and is not locked."""
        throttle = Throttle(settings())
        for _ in range(5):
            with pytest.raises(ConnectionError):
                async with throttle.attempt("amina", "192.0.2.1"):
                    raise ConnectionError("the database is down")
        assert await fail(throttle, "amina") == []

    async def test_one_address_trying_many_accounts_is_locked(self) -> None:
        throttle = Throttle(settings())
        fallen = [await fail(throttle, f"user{n}", "192.0.2.9") for n in range(5)]
        assert fallen == [[], [], [], [], [Scope.ADDRESS]]
        with pytest.raises(TooManyRequests):
            await admitted(throttle, "someone.else", "192.0.2.9")
        await admitted(throttle, "someone.else", "192.0.2.10")  # another address is not held

    async def test_attempts_in_flight_together_cannot_pass_the_limit(self) -> None:
        throttle = Throttle(settings())
        await fail(throttle, "amina")  # two failures left
        async with AsyncExitStack() as in_flight:
            for _ in range(2):
                await in_flight.enter_async_context(throttle.attempt("amina", "192.0.2.1"))
            with pytest.raises(TooManyRequests) as refused:
                await admitted(throttle, "amina")  # a third: its hash is not even started
            assert refused.value.retry_after == 1
            await admitted(throttle, "karim")  # the others' are not held up
        await admitted(throttle, "amina")  # those answered, there is room again

    async def test_the_lock_ends_after_its_period_with_a_fresh_count(self) -> None:
        throttle = Throttle(settings(login_lock_seconds=1))
        for _ in range(3):
            await fail(throttle, "amina")
        with pytest.raises(TooManyRequests) as locked:
            await admitted(throttle, "amina", "192.0.2.1")
        assert locked.value.retry_after == 1
        await asyncio.sleep(1.1)
        assert await fail(throttle, "amina") == []  # the first of three again

    def test_each_wrong_password_waits_longer_up_to_a_cap(self) -> None:
        throttle = Throttle(settings(login_delay_seconds=0.5))
        assert [throttle.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
        assert throttle.delay(100) == 5.0

    async def test_a_wrong_password_answers_after_the_growing_delay(self) -> None:
        throttle = Throttle(settings(login_delay_seconds=0.2))
        began = time.monotonic()
        await fail(throttle, "amina")
        first = time.monotonic() - began
        began = time.monotonic()
        await fail(throttle, "amina")
        second = time.monotonic() - began
        assert first >= 0.2 and second >= 0.4  # lower bounds: a loaded machine only adds


class TestTokenRate:
    async def test_a_token_past_its_rate_is_told_when_to_come_back(self) -> None:
        throttle = Throttle(settings(api_requests_per_minute=4))
        for _ in range(4):
            await throttle.check_token("token-a")
        with pytest.raises(TooManyRequests) as limited:
            await throttle.check_token("token-a")
        assert limited.value.status == 429
        assert 1 <= limited.value.retry_after <= 60
        await throttle.check_token("token-b")  # every other token keeps its own rate

    def test_the_default_rate_leaves_room_for_a_busy_member_system(self) -> None:
        # The chaos run and the benchmarks post at most a few hundred requests a minute per
        # token; a page polled by a test 20 times a second is 1,200.
        assert NodeSettings.model_fields["api_requests_per_minute"].default >= 6000


class TestHashingInTurn:
    async def test_hashing_runs_off_the_event_loop_a_bounded_number_at_a_time(self) -> None:
        running, most = 0, 0
        guard = threading.Lock()

        def work(seconds: float) -> str:
            nonlocal running, most
            with guard:
                running += 1
                most = max(most, running)
            time.sleep(seconds)  # holds its thread as argon2 holds a core
            with guard:
                running -= 1
            return threading.current_thread().name

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beating = asyncio.create_task(ticker())
        try:
            names = await asyncio.gather(
                *(passwords.in_turn(work, 0.1) for _ in range(passwords.HASHING_AT_ONCE * 3))
            )
        finally:
            beating.cancel()
        assert most == passwords.HASHING_AT_ONCE
        assert all(name.startswith("relais-argon2") for name in names)
        assert ticks >= 10  # the loop kept answering while the hashes ran


class TestTheAnswer:
    def test_a_429_says_when_to_come_back_in_its_header_and_its_body(self) -> None:
        refused = TooManyRequests("too many attempts: try again later", retry_after=840)
        response = problems.problem(
            refused.status, refused.type, refused.title, refused.detail, **refused.extensions()
        )
        assert response.status_code == 429
        assert response.headers["retry-after"] == "840"
        assert response.media_type == "application/problem+json"
        assert json.loads(bytes(response.body))["retry_after"] == 840

    @pytest.mark.parametrize("kind", sorted(BY_TYPE))
    def test_every_error_can_be_rebuilt_from_a_typed_reply(self, kind: str) -> None:
        """As the bus rebuilds the error a service's NATS reply names."""
        rebuilt = BY_TYPE[kind]("detail", field="field")
        assert (rebuilt.type, rebuilt.field) == (kind, "field")
