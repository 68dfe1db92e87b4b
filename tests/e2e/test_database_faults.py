"""A node whose database connections are cut while it works keeps working: what it has to send
leaves afterwards, without a restart of the node, and it says it is ready again.

This is the fault that once made a node stop sending in silence: PostgreSQL closing the outbox
relay's connection inside its transaction ended the relay with no log line."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx

from deploy.network import Network
from tests.e2e.conftest import client
from tests.e2e.test_referrals import referral, status_at
from tests.waiting import eventually

Creds = dict[str, Any]


async def cut_connections(network: Network, node: str, *, rounds: int, every: float) -> int:
    """Terminate every backend of ``node``'s database, ``rounds`` times; how many were cut."""
    database = network.database_name(network.plan(node))
    cut = 0
    admin = await asyncpg.connect(network.postgres.url())
    try:
        for _ in range(rounds):
            cut += len(
                await admin.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
            )
            await asyncio.sleep(every)
    finally:
        await admin.close()
    return cut


async def test_cutting_a_nodes_database_connections_mid_work_loses_no_event(
    running_network: Creds, network: Network
) -> None:
    amal_node = network.supervisor["node-amal"]
    pid, restarts = amal_node.pid, amal_node.restarts
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        # amal receives referrals and answers each with its `received` event, through its
        # outbox relay, while its connections are cut again and again.
        cutter = asyncio.create_task(cut_connections(network, "amal", rounds=60, every=0.1))
        sent: list[str] = []
        try:
            for _ in range(12):
                response = await sanad.post("/api/v1/referrals", json=referral())
                assert response.status_code == 201, response.text
                sent.append(response.json()["referral_id"])
                await asyncio.sleep(0.4)
        finally:
            cut = await cutter
        assert cut > 0

        async def all_received_at_sanad() -> bool:
            statuses = [await status_at(sanad, r) for r in sent]
            return statuses == ["received"] * len(sent)

        await eventually(
            all_received_at_sanad, within=90, what="amal's received answers reach sanad"
        )

        async def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await amal.get("/readyz")).status_code == 200
            return False

        await eventually(ready, within=60, what="amal ready again")
    assert (amal_node.pid, amal_node.restarts) == (pid, restarts)  # no restart of the node
