"""Fair queueing per sender (shared/lanes.py): each sender's messages in their order, one at
a time, and a sender with a long queue holds up no other."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.lanes import Lanes, sender_of


@dataclass
class Fetched:
    """What a lane needs of a fetched message: its subject, and being kept alive."""

    subject: str
    n: int
    kept_alive: int = field(default=0)

    async def in_progress(self) -> None:
        self.kept_alive += 1


def test_the_lane_of_a_network_message_is_its_sender() -> None:
    assert sender_of("relais.net.jusoor.amal.referral.offered") == "jusoor"
    assert sender_of("relais.local.referrals.changed") == ""


async def test_a_long_queue_holds_up_no_other_sender_and_each_keeps_its_order() -> None:
    handled: list[tuple[str, int]] = []
    slow = asyncio.Event()

    async def deliver(msg: Fetched) -> None:  # jusoor's wait until sanad's were all handled
        if msg.subject.startswith("relais.net.jusoor"):
            await slow.wait()
        handled.append((sender_of(msg.subject), msg.n))
        if sum(1 for s, _ in handled if s == "sanad") == 3:
            slow.set()

    lanes = Lanes(deliver, name="test", keep_alive=60)  # type: ignore[arg-type]
    for n in range(50):
        lanes.put(Fetched("relais.net.jusoor.amal.referral.offered", n))  # type: ignore[arg-type]
    for n in range(3):
        lanes.put(Fetched("relais.net.sanad.amal.referral.offered", n))  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        while lanes.waiting:  # noqa: ASYNC110 (the lanes' own state, nothing to wait on)
            await asyncio.sleep(0)
    await lanes.close()
    assert handled[:3] == [("sanad", 0), ("sanad", 1), ("sanad", 2)]
    assert [n for s, n in handled if s == "jusoor"] == list(range(50))


async def test_what_waits_in_a_lane_is_kept_from_redelivery_and_a_failure_is_raised() -> None:
    blocked = asyncio.Event()

    async def deliver(msg: Fetched) -> None:
        if msg.n == 0:
            await blocked.wait()
            raise ConnectionError("the ack was lost with the link")

    lanes = Lanes(deliver, name="test", keep_alive=0.01)  # type: ignore[arg-type]
    waiting = [Fetched("relais.net.jusoor.amal.referral.offered", n) for n in range(3)]
    for msg in waiting:
        lanes.put(msg)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        while waiting[2].kept_alive < 2:  # noqa: ASYNC110 (as above)
            await asyncio.sleep(0.01)
        blocked.set()
        while True:
            try:
                lanes.check()
            except ConnectionError:
                break
            await asyncio.sleep(0.01)
    await lanes.close()
