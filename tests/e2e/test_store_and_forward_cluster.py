"""A hub of three nats-servers with R3 streams keeps every event when one server is killed
while events cross it."""

from __future__ import annotations

from tests.bench.hub_cluster import (
    ClusterFederation,
    cluster_federation,
    deliver,
    kill_server,
    leader,
)

EVENTS = 2000


async def test_a_hub_server_killed_under_load_loses_nothing_and_repeats_nothing() -> None:
    async with cluster_federation(lambda _: None) as fed:
        victim = await leader(fed, "ROUTER")  # the server doing the most: it leads the router

        async def kill(_: int) -> None:
            await kill_server(fed, victim)

        figures = await deliver(fed, EVENTS, within=180, during=kill)
        assert figures["arrived"] == EVENTS
        assert victim not in [
            s.spec.name for s in fed.cluster.servers if _running(fed, s.spec.name)
        ]
        # The two left carry on: a new router leader, and the next events cross too.
        assert await leader(fed, "ROUTER") != victim
        assert (await deliver(fed, 100, within=60))["arrived"] == 100


def _running(fed: ClusterFederation, name: str) -> bool:
    return any(
        m.spec.name == f"nats-{name}" and m.running for m in fed.cluster.supervisor.processes
    )
