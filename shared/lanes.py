"""Fair queueing per sender on one durable consumer: a lane per sending organisation, each
delivering its messages one at a time and in stream order, the lanes side by side (issue 16).

One consumer delivering its stream in order makes every sender wait behind the others: a member
flooding a node with 1,500 envelopes to refuse held another member's referral behind them for a
minute. In lanes, the consumer fetches ahead (up to its ``max_ack_pending``) and hands each
message to its sender's lane, so the flood queues behind itself only.

What stays as it was: a sender's messages are handled in the order they were stored (so are
those of each referral, which all come from one sender to this node), each by the same
``deliver`` as before (ack, retry, park); a message waiting in a lane is kept from being
redelivered (``in_progress``) and nothing is acked before it is handled, so a crash loses
nothing: what was fetched and not handled comes back after ``ack_wait``, or at once when the
consumer stops in good order (``give_back``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from nats.aio.msg import Msg

Deliver = Callable[[Msg], Awaitable[None]]


def sender_of(subject: str) -> str:
    """The lane of a message: its sender, the third token of ``relais.net.<from>.<to>.…``;
    anything else shares one lane."""
    tokens = subject.split(".")
    return tokens[2] if len(tokens) > 3 and tokens[1] == "net" else ""


async def give_back(messages: Iterable[Msg]) -> None:
    """Hand back, as a consumer stops, what it fetched and did not handle (a nak): the broker
    redelivers it at once, ahead of newer messages, to the next start; left unacked it would
    wait ``ack_wait`` while what came after it went first. A nak spends one of the message's
    deliveries; only a stop in good order spends it, and a stop is rare."""
    for msg in list(messages):
        with contextlib.suppress(Exception):  # the link is down: ack_wait brings it back
            await msg.nak()


class Lanes:
    """The lanes of one consumer; ``put`` a fetched message, ``check`` for a lane that failed."""

    def __init__(self, deliver: Deliver, *, name: str, keep_alive: float) -> None:
        self._deliver = deliver
        self._name = name
        self._keep_alive = keep_alive
        self._waiting: dict[str, deque[Msg]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._failure: BaseException | None = None
        self._alive: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def put(self, msg: Msg) -> None:
        lane = sender_of(msg.subject)
        self._waiting.setdefault(lane, deque()).append(msg)
        if lane not in self._workers:
            self._workers[lane] = asyncio.create_task(
                self._work(lane), name=f"{self._name}: lane {lane or '-'}"
            )
        if self._alive is None:
            self._alive = asyncio.create_task(self._keep_alive_loop(), name=f"{self._name}: wpi")

    def check(self) -> None:
        """Raise what a lane failed with (an ack on a lost connection): the consumer restarts."""
        if self._failure is not None:
            raise self._failure

    async def _work(self, lane: str) -> None:
        queue = self._waiting[lane]
        try:
            while queue:
                await self._deliver(queue[0])
                queue.popleft()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
        finally:
            self._workers.pop(lane, None)
            if not queue:
                self._waiting.pop(lane, None)

    async def _keep_alive_loop(self) -> None:
        """Tell the broker every message still in a lane is being worked on, so that a long
        queue is not redelivered behind itself after ``ack_wait``."""
        while True:
            await asyncio.sleep(self._keep_alive)
            for queue in list(self._waiting.values()):
                for msg in list(queue):
                    with contextlib.suppress(Exception):  # acked meanwhile, or the link is down
                        await msg.in_progress()

    async def close(self) -> None:
        """Stop every lane and give back what they had not handled (``give_back``)."""
        tasks = [*self._workers.values(), *([self._alive] if self._alive else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for queue in self._waiting.values():
            await give_back(queue)
        self._workers.clear()
        self._waiting.clear()
        self._alive = None
