"""A member system's feed across a restart of its node: the node's processes and its
nats-server stopped and started again through the launcher while the system is away, and
every event it missed is there when it comes back, each event id once; what it had already
acknowledged does not come back."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from nats.aio.client import Client as NatsClient

from deploy.network import Network
from tests.e2e.conftest import client
from tests.e2e.test_member_clients import ask, connected, login_answer, seed_of, system
from tests.e2e.test_referrals import reaches, referral, send
from tests.e2e.test_store_and_forward import start_node, stop_node
from tests.waiting import eventually

Creds = dict[str, Any]
Event = dict[str, Any]


async def drain(nc: NatsClient, consumer: str, wanted: dict[str, int]) -> list[Event]:
    """Every event the client's feed delivers, acknowledged, until it holds at least
    ``wanted[referral_id]`` distinct event ids about each referral and then has nothing more
    at once; the events about other referrals (other tests') are acknowledged and left out."""
    sub = await nc.jetstream().pull_subscribe_bind(consumer, stream="FEED")
    found: list[Event] = []

    def enough() -> bool:
        ids: dict[str, set[str]] = {r: set() for r in wanted}
        for event in found:
            ids[event["data"]["referral"]["referral_id"]].add(event["id"])
        return all(len(ids[r]) >= n for r, n in wanted.items())

    try:
        async with asyncio.timeout(120):
            while True:
                try:
                    batch = await sub.fetch(100, timeout=1)
                except TimeoutError:
                    if enough():
                        return found
                    continue
                for msg in batch:
                    event = json.loads(msg.data)
                    if event["data"]["referral"]["referral_id"] in wanted:
                        found.append(event)
                    await msg.ack()
    finally:
        await sub.unsubscribe()


def changes(events: list[Event]) -> Counter[tuple[str, str]]:
    """(referral, change) of each distinct event id: what a client that de-duplicates sees."""
    unique = {e["id"]: e for e in events}
    return Counter(
        (e["data"]["referral"]["referral_id"], e["data"]["change"]) for e in unique.values()
    )


async def test_a_system_away_during_a_node_restart_gets_every_missed_event_once(
    running_network: Creds, network: Network
) -> None:
    sanad = system(running_network, "sanad")
    consumer = sanad["nats"]["feed"]["consumer"]
    # Before: the system makes a referral over NATS and reads its first events.
    async with connected(sanad) as conn:
        made = await ask(conn.nc, "create", referral() | {"token": sanad["token"]})
        first = made["result"]["referral_id"]
        async with client(running_network, "sanad", "caseworker") as http:
            await reaches(http, first, "received", "amal's receipt reaches sanad")
        read = await drain(conn.nc, consumer, {first: 2})
    assert changes(read) == Counter({(first, "sent"): 1, (first, "received"): 1})

    # Away: events happen on its node, then the node and its nats-server restart while the
    # other organisation acts on the referral (its answer waits at the hub meanwhile).
    async with client(running_network, "amal", "focal_point") as amal:
        accepted = await amal.post(f"/api/v1/referrals/{first}/accept")
        assert accepted.status_code == 200, accepted.text
        async with client(running_network, "sanad", "caseworker") as http:
            await reaches(http, first, "accepted", "amal's acceptance reaches sanad")
        second = await send(running_network)
        await reaches(amal, second, "received", "the second referral lands at amal")
        await stop_node(network, "sanad")
        try:
            started = await amal.post(f"/api/v1/referrals/{first}/start")
            assert started.status_code == 200, started.text
        finally:
            await start_node(network, "sanad")
    async with client(running_network, "sanad", "caseworker") as http:
        # What sanad had fetched and not handled when it stopped is handed back and comes at
        # once; only one the stop could not hand back (the process killed at its stop
        # timeout on a loaded machine) waits out the consumer's ack_wait (60 s) first.
        await reaches(
            http, first, "in_progress", "amal's start reaches sanad after its restart", within=90
        )
        await reaches(
            http, second, "received", "amal's receipt of the second reaches sanad", within=90
        )

    # Back: the restarted nats-server lets the client in again, and its feed kept its place.
    seed = seed_of(sanad["nats"]["nkey_seed_file"])

    async def let_in() -> bool:
        try:
            return await login_answer(sanad["nats"]["url"], seed) == "PONG"
        except OSError:
            return False

    await eventually(let_in, within=30, what="the restarted nats-server lets the client in")
    async with connected(sanad) as conn:
        missed = await drain(conn.nc, consumer, {first: 2, second: 2})
    assert changes(missed) == Counter(
        {
            (first, "accepted"): 1,
            (first, "in_progress"): 1,
            (second, "sent"): 1,
            (second, "received"): 1,
        }
    )
    # Nothing it had acknowledged before came back.
    assert not {e["id"] for e in read} & {e["id"] for e in missed}
    redelivered = len(missed) - len({e["id"] for e in missed})
    print(f"\nfeed after the restart: {len(missed)} deliveries, {redelivered} redelivered")
