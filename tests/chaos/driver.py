"""The clients: referrals sent at a steady rate from two members to a third through the public
HTTP API, each with its own ``Idempotency-Key``, retried with that same key, as a careful
client would, until the node answers 201 (or refuses it for good with a 4xx).

Retried: 5xx answers (after ``Retry-After`` when given), timeouts and connection errors.
Every answer is counted by route and status; every 201 is kept with the referral id it gave,
so that the checks can tell what the nodes acknowledged from what they hold."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats

from tests.chaos.network import RECIPIENT, SENDERS, ChaosNetwork

ROUTE = "POST /api/v1/referrals"
TIMEOUT = 10.0  # a paused node answers nothing: give up on the attempt, retry the same key
MAX_BACKOFF = 5.0


def body(n: int) -> dict[str, Any]:
    return {
        "to_org": RECIPIENT,
        "category": "primary_health",
        "urgency": "priority",
        "legal_basis": "consent",
        "consent": {},
        "payload": {
            "given_name": f"Chaos {n}",
            "need_summary": "Consultation de médecine générale (essai sous pannes).",
            "languages": "fra",
        },
    }


@dataclass
class Sent:
    """One logical referral: who sent it, its key, and what came of it."""

    sender: str
    key: str
    started_at: float
    attempts: int = 0
    referral_id: str | None = None
    acked_at: float | None = None
    other_ids: list[str] = field(default_factory=list)  # a different id for the same key
    refused: str | None = None  # a 4xx: the node will never take it


@dataclass
class Ledger:
    """What the clients did and saw."""

    sent: list[Sent] = field(default_factory=list)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, status)
    received_at: list[float] = field(default_factory=list)  # `received` back at a sender

    @property
    def ack_times(self) -> list[float]:
        return sorted(s.acked_at for s in self.sent if s.acked_at is not None)


class Driver:
    def __init__(self, chaos: ChaosNetwork, ledger: Ledger, rate: float, seed: int) -> None:
        self.chaos, self.ledger, self.rate = chaos, ledger, rate
        self.rng = random.Random(seed ^ 0x5EED)
        self.tasks: set[asyncio.Task[None]] = set()
        self.clients = {
            s: httpx.AsyncClient(
                base_url=chaos.url(s),
                headers={"Authorization": f"Bearer {chaos.token(s, 'caseworker')}"},
                timeout=TIMEOUT,
                limits=httpx.Limits(max_connections=50),
            )
            for s in SENDERS
        }
        self.stopping = False

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def send_until(self, done: Callable[[], bool]) -> None:
        """Start one referral every 1/rate seconds, alternating senders, until ``done()``."""
        started, n = time.monotonic(), 0
        while not done():
            now = time.monotonic()
            delay = started + n / self.rate - now
            if delay > 0:
                await asyncio.sleep(delay)
            sent = Sent(SENDERS[n % len(SENDERS)], str(uuid.uuid4()), time.monotonic())
            self.ledger.sent.append(sent)
            task = asyncio.create_task(self._create(sent, n))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            n += 1

    async def settle(self, within: float) -> int:
        """Let every create still retrying finish; how many did not within ``within`` s."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=within)
            self.stopping = True
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
            return len(pending)
        return 0

    async def _create(self, sent: Sent, n: int) -> None:
        client, backoff = self.clients[sent.sender], 0.2
        payload = body(n)
        while not self.stopping:
            sent.attempts += 1
            wait = backoff
            try:
                response = await client.post(
                    "/api/v1/referrals", json=payload, headers={"Idempotency-Key": sent.key}
                )
            except httpx.TimeoutException:
                self.ledger.answers[(ROUTE, "timeout")] += 1
            except httpx.TransportError:
                self.ledger.answers[(ROUTE, "connection error")] += 1
            else:
                self.ledger.answers[(ROUTE, str(response.status_code))] += 1
                if response.status_code == 201:
                    referral_id = str(response.json()["referral_id"])
                    if sent.referral_id is None:
                        sent.referral_id, sent.acked_at = referral_id, time.monotonic()
                    elif referral_id != sent.referral_id:
                        sent.other_ids.append(referral_id)
                    return
                if 400 <= response.status_code < 500:
                    sent.refused = f"{response.status_code}: {response.text[:300]}"
                    return
                wait = max(backoff, _retry_after(response))
            await asyncio.sleep(min(wait, MAX_BACKOFF) * self.rng.uniform(0.5, 1.0))
            backoff = min(backoff * 2, MAX_BACKOFF)


def _retry_after(response: httpx.Response) -> float:
    with contextlib.suppress(ValueError):
        return float(response.headers.get("Retry-After", "0"))
    return 0.0


async def _ignore(_: Exception) -> None:
    return None


async def watch_received(chaos: ChaosNetwork, ledger: Ledger) -> list[Any]:
    """Note when each sender's node learns a referral was received (its local
    ``relais.local.referrals.changed`` event), to time the recovery after a heal."""
    connections = []
    for sender in SENDERS:

        async def on_message(msg: Any) -> None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                if json.loads(msg.data)["data"]["change"] == "received":
                    ledger.received_at.append(time.monotonic())

        nc = await nats.connect(
            chaos.creds["nodes"][sender]["nats_url"],
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            allow_reconnect=True,
            error_cb=_ignore,  # its server is killed and paused on purpose: no traceback each time
        )
        await nc.subscribe("relais.local.referrals.changed", cb=on_message)
        connections.append(nc)
    return connections
