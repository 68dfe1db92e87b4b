"""Store-and-forward on real servers: an organisation's node offline while referrals are sent
to it, the hub's nats-server offline while the nodes keep working, and a backlog of 10,000
events draining after an outage. Each time: everything arrives, once."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import nats

from deploy.network import Network
from shared.federation import INBOX, OUTBOX, account_api
from tests.e2e.conftest import client
from tests.e2e.test_referrals import send, status_at
from tests.waiting import eventually

Creds = dict[str, Any]
# After a hub restart, the hub's copy of a member's OUTBOX resumes only after nats-server's
# consumer-create wait and back-off (about 40 s here); a node's return is quicker.
AFTER_HUB_RESTART = 120.0


async def stop_node(network: Network, node: str) -> None:
    """Take an organisation's node off the network: its node process, then its nats-server."""
    await network.supervisor.stop(f"node-{node}")
    await network.supervisor.stop(f"nats-{node}")


async def start_node(network: Network, node: str) -> None:
    plan = network.plan(node)
    await network.supervisor.start(network.nats_process(plan))
    await network.start_nodes([plan])


async def reach(node: httpx.AsyncClient, referral_id: str, status: str, within: float) -> None:
    async def there() -> bool:
        return await status_at(node, referral_id) == status

    await eventually(there, within=within, what=f"{referral_id} is {status}")


async def inbox_ids(amal: httpx.AsyncClient) -> list[str]:
    response = await amal.get("/api/v1/referrals", params={"box": "inbox", "limit": 200})
    assert response.status_code == 200, response.text
    return [item["referral_id"] for item in response.json()["items"]]


async def test_referrals_sent_while_the_recipient_is_offline_arrive_once_and_are_answered(
    running_network: Creds, network: Network
) -> None:
    await stop_node(network, "amal")
    try:
        sent = [await send(running_network) for _ in range(5)]
        async with client(running_network, "sanad", "caseworker") as sanad:
            # The sender keeps working: its referrals are kept and wait, marked sent.
            assert [await status_at(sanad, r) for r in sent] == ["sent"] * 5
    finally:
        await start_node(network, "amal")

    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        for referral_id in sent:
            await reach(amal, referral_id, "received", within=60)
        inbox = await inbox_ids(amal)
        assert all(inbox.count(r) == 1 for r in sent)
        for referral_id in sent:
            response = await amal.post(f"/api/v1/referrals/{referral_id}/accept")
            assert response.status_code == 200, response.text
        for referral_id in sent:
            await reach(sanad, referral_id, "accepted", within=AFTER_HUB_RESTART)
            history = (await sanad.get(f"/api/v1/referrals/{referral_id}")).json()["history"]
            assert [h["change"] for h in history] == ["sent", "received", "accepted"]


async def test_nodes_keep_working_while_the_hub_is_offline_and_everything_flows_after(
    running_network: Creds, network: Network
) -> None:
    hub = network.hub
    await network.supervisor.stop(f"nats-{hub.node_id}")
    try:
        sent = [await send(running_network) for _ in range(3)]
        async with (
            client(running_network, "sanad", "caseworker") as sanad,
            client(running_network, "amal", "focal_point") as amal,
        ):
            # Each node reads its own directory replica and its own referrals.
            organisations = await sanad.get("/api/v1/directory/organisations")
            assert organisations.status_code == 200
            assert {"amal", "sanad"} <= {o["org_id"] for o in organisations.json()}
            assert (await amal.get("/api/v1/directory/organisations/sanad")).status_code == 200
            assert (await amal.get("/api/v1/referrals", params={"box": "inbox"})).status_code == 200
            assert [await status_at(sanad, r) for r in sent] == ["sent"] * 3
            await asyncio.sleep(2)  # nothing can cross meanwhile
            assert not set(sent) & set(await inbox_ids(amal))
    finally:
        await network.supervisor.start(network.nats_process(hub))

    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        for referral_id in sent:
            await reach(amal, referral_id, "received", within=AFTER_HUB_RESTART)
            response = await amal.post(
                f"/api/v1/referrals/{referral_id}/decline", json={"reason": "no_capacity"}
            )
            assert response.status_code == 200, response.text
        for referral_id in sent:
            await reach(sanad, referral_id, "declined", within=60)
            history = (await sanad.get(f"/api/v1/referrals/{referral_id}")).json()["history"]
            assert [h["change"] for h in history] == ["sent", "received", "declined"]
        inbox = await inbox_ids(amal)
        assert all(inbox.count(r) == 1 for r in sent)


BACKLOG = 10_000


async def test_a_backlog_of_ten_thousand_events_drains_completely_once_after_an_outage(
    network: Network,
) -> None:
    """At the streams' level (no node handles these: no consumer filters their subject)."""
    subject = f"relais.net.sanad.amal.backlog.{uuid.uuid4().hex[:8]}"
    await network.supervisor.stop("nats-amal")
    try:
        sanad = await nats.connect(network.plan("sanad").nats_url)
        try:
            js = sanad.jetstream(timeout=10)
            for index in range(BACKLOG):
                # Its own id each, as the outbox relay sets: JetStream deduplicates on it.
                await js.publish_async(
                    subject, b"{}", headers={"Nats-Msg-Id": f"{subject}-{index}"}
                )
            await js.publish_async_completed()
            held = await js.stream_info(OUTBOX, subjects_filter=subject)
            assert (held.state.subjects or {}).get(subject) == BACKLOG
        finally:
            await sanad.close()
        hub = await nats.connect(network.hub.nats_url)
        try:
            hub_js = hub.jetstream(prefix=account_api("amal"), timeout=10)  # amal's account

            async def at_the_hub() -> bool:
                info = await hub_js.stream_info("TO_amal", subjects_filter=subject)
                return (info.state.subjects or {}).get(subject) == BACKLOG

            await eventually(at_the_hub, within=120, what="the backlog waits at the hub")
        finally:
            await hub.close()
    finally:
        await network.supervisor.start(network.nats_process(network.plan("amal")))
    returned = time.monotonic()
    amal = await nats.connect(network.plan("amal").nats_url)
    try:
        amal_js = amal.jetstream(timeout=10)

        async def count() -> int:
            info = await amal_js.stream_info(INBOX, subjects_filter=subject)
            return int((info.state.subjects or {}).get(subject, 0))

        async def drained() -> bool:
            return await count() >= BACKLOG

        await eventually(drained, within=180, what=f"{BACKLOG} events reach amal's INBOX")
        seconds = time.monotonic() - returned
        await asyncio.sleep(1)  # anything copied twice would show now
        assert await count() == BACKLOG
        print(f"\n{BACKLOG} events drained in {seconds:.1f}s ({BACKLOG / seconds:.0f}/s)")
    finally:
        await amal.close()
