"""A member's leaf configured with the three hub servers' addresses: when the server it is
linked to is killed while events cross, it links to another and nothing is lost or repeated;
and a leaf that starts while that server is still down links to one of the others.

(A linked leaf also learns the cluster's other servers from the hub itself, so the first part
would pass with one address; the second is what only the list makes work: the member's
nats-server restarted, e.g. its machine rebooted, during a hub server's outage.)"""

from __future__ import annotations

import httpx

from tests.bench.hub_cluster import ClusterFederation, cluster_federation, deliver, kill_server
from tests.waiting import eventually

EVENTS = 2000


async def linked_to(fed: ClusterFederation, org: str) -> list[str]:
    """The hub servers that hold a leaf link from ``org`` (their own /leafz)."""
    servers = []
    async with httpx.AsyncClient(timeout=2) as client:
        for server in fed.cluster.servers:
            spec = server.spec
            if not _running(fed, spec.name):
                continue
            leafz = (await client.get(f"http://{spec.host}:{spec.monitor_port}/leafz")).json()
            if any(leaf.get("name") == org for leaf in leafz.get("leafs") or []):
                servers.append(spec.name)
    return servers


async def test_the_leaf_links_to_another_hub_server_when_its_own_is_killed() -> None:
    async with cluster_federation(lambda _: None) as fed:
        # Three addresses in the one remote of sanad's leaf (what `relais node join --hub` x3
        # writes): one link at a time.
        assert len(fed.cluster.leaf("sanad").hub_leaf_urls) == 3
        (victim,) = await linked_to(fed, "sanad")

        async def kill(_: int) -> None:
            await kill_server(fed, victim)

        figures = await deliver(fed, EVENTS, within=180, during=kill)
        assert figures["arrived"] == EVENTS  # nothing lost, nothing copied twice

        async def relinked() -> bool:
            return len(await linked_to(fed, "sanad")) == 1

        await eventually(relinked, within=30, what="sanad's leaf links to another hub server")
        (now,) = await linked_to(fed, "sanad")
        assert now != victim
        # And the link it has now carries the next events too.
        assert (await deliver(fed, 200, within=60))["arrived"] == 200

        # The member's nats-server restarts while the killed hub server is still down: it
        # knows of the others only from its configuration.
        leaf = fed.cluster.leaf("sanad")
        await fed.cluster.supervisor.stop(f"nats-{leaf.name}")
        await fed.cluster.supervisor.start(fed.cluster.leaf_process(leaf))
        await eventually(relinked, within=30, what="the restarted leaf links to a live server")
        assert (await deliver(fed, 200, within=60))["arrived"] == 200


def _running(fed: ClusterFederation, name: str) -> bool:
    return any(
        m.spec.name == f"nats-{name}" and m.running for m in fed.cluster.supervisor.processes
    )
