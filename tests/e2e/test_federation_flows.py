"""Events cross the network through the durable streams: the hub's broadcasts reach every node,
and one organisation's node reaches another's through the hub, also after an outage."""

from __future__ import annotations

from typing import Any

from deploy.network import Network
from tests.e2e.conftest import client
from tests.waiting import eventually


async def test_a_directory_change_on_the_hub_reaches_every_node(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "hub", "coordinator") as hub:
        current = (await hub.get("/api/v1/directory/organisations/amal")).json()
        changed = {**current, "version": current["version"] + 1, "city": "berkane"}
        response = await hub.put("/api/v1/directory/organisations/amal", json=changed)
        assert response.status_code == 200, response.text

    for node in ("sanad", "amal"):
        async with client(running_network, node, "caseworker") as member:

            async def replicated(member: Any = member) -> bool:
                record = (await member.get("/api/v1/directory/organisations/amal")).json()
                return bool(record["version"] == changed["version"] and record["city"] == "berkane")

            await eventually(replicated, within=20, what=f"{node} replicates the change")


async def test_a_stale_directory_version_is_refused(running_network: dict[str, Any]) -> None:
    async with client(running_network, "hub", "coordinator") as hub:
        current = (await hub.get("/api/v1/directory/organisations/sanad")).json()
        response = await hub.put("/api/v1/directory/organisations/sanad", json=current)
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "version"


async def probe_answered(
    running_network: dict[str, Any], sender: str, recipient: str, *, within: float
) -> float:
    async with client(running_network, sender, "admin") as node:
        sent = await node.post(f"/api/v1/directory/links/{recipient}/probe")
        assert sent.status_code == 202, sent.text
        probe_id = sent.json()["probe_id"]
        answer: dict[str, Any] = {}

        async def answered() -> bool:
            links = (await node.get("/api/v1/directory/links")).json()
            found = [
                link
                for link in links
                if link["org_id"] == recipient and link["probe_id"] == probe_id
            ]
            if found and found[0]["answered_at"]:
                answer.update(found[0])
                return True
            return False

        await eventually(answered, within=within, what=f"{recipient} answers {sender}'s probe")
        return float(answer["round_trip_ms"])


async def test_one_node_reaches_another_through_the_hub_and_hears_back(
    running_network: dict[str, Any],
) -> None:
    round_trip = await probe_answered(running_network, "sanad", "amal", within=60)
    assert round_trip > 0


async def test_an_event_waits_while_the_receiving_nats_server_is_down_and_arrives_after(
    running_network: dict[str, Any], network: Network
) -> None:
    await probe_answered(running_network, "sanad", "amal", within=60)  # the path works first
    amal = network.plan("amal")
    await network.supervisor.stop("nats-amal")
    try:
        async with client(running_network, "sanad", "admin") as sanad:
            # The sender's node keeps working while the recipient is away.
            sent = await sanad.post("/api/v1/directory/links/amal/probe")
            assert sent.status_code == 202
            probe_id = sent.json()["probe_id"]
    finally:
        await network.supervisor.start(network.nats_process(amal))

    async with client(running_network, "sanad", "admin") as sanad:

        async def answered() -> bool:
            links = (await sanad.get("/api/v1/directory/links")).json()
            return any(
                link["org_id"] == "amal" and link["probe_id"] == probe_id and link["answered_at"]
                for link in links
            )

        await eventually(answered, within=90, what="amal answers the probe sent while it was down")
