"""The throttle without a node: the growing delay and the per-token request rate; password
hashing kept off the event loop, a bounded number at a time; and the 429 answer, with when to
come back. The login counts live in PostgreSQL: tests/integration/test_login_throttle_counts.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from shared import problems
from shared.auth import passwords
from shared.auth.throttle import Throttle
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


class TestGrowingDelay:
    def test_each_wrong_password_waits_longer_up_to_a_cap(self) -> None:
        throttle = Throttle(settings(login_delay_seconds=0.5))
        assert [throttle.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
        assert throttle.delay(100) == 5.0


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
