"""The chaos network with the hub as a cluster of three nats-servers (``--hub-cluster``).

The same network as ``tests.chaos.network`` (the demo's launcher, ``deploy.network.Network``)
but for the hub's nats-server, which is three clustered servers (``hub-1``..``hub-3``, one
JetStream domain ``hub``, rendered as ``deploy.hub_cluster`` renders them, sharing the hub's
certificate and accounts file); the hub node's services connect to all three
(``RELAIS_NATS_URL`` with the three addresses) and make the hub's streams R3
(``RELAIS_STREAM_REPLICAS=3``); each member's leaf has the three hub leaf addresses, each
through a relay of its own, so that cutting a member's link (``LinkGroup``) cuts all three.

What is not clustered: the directory's system-account connection (``RELAIS_NATS_SYSTEM_URL``)
takes one address, hub-1's; while hub-1 is down, a roster change cannot be applied (none
happens during a run; the directory's 30-second recheck logs its failure and tries again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from deploy.hub_cluster import HubServer
from deploy.nats_config import NatsServerSpec
from deploy.network import HUB_DOMAIN, Network, NodePlan, plan_network
from deploy.ports import free_ports
from deploy.processes import ProcessSpec
from tests.chaos.link import LinkRelay

SIZE = 3  # R3 needs two of the three: the faults touch one server at a time


class LinkGroup:
    """A member's link to the hub cluster: one relay per hub server, cut and healed together."""

    def __init__(self, relays: Sequence[LinkRelay]) -> None:
        self.relays = list(relays)

    async def start(self) -> None:
        for relay in self.relays:
            await relay.start()

    async def stop(self) -> None:
        for relay in self.relays:
            await relay.stop()

    def cut(self) -> int:
        return sum(relay.cut() for relay in self.relays)

    def heal(self) -> None:
        for relay in self.relays:
            relay.heal()


@dataclass
class HubClusterNetwork(Network):
    """A ``Network`` whose hub's nats-server is ``SIZE`` clustered servers. ``servers[0]``
    listens on the hub plan's ports (its client, monitor and leaf ports), the others on free
    ones; members' leaves dial the hub servers through ``links``."""

    servers: list[HubServer] = field(init=False)
    links: dict[str, LinkGroup] = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        hub = self.hub
        assert hub.leaf_port is not None
        ports = iter(free_ports(4 * SIZE - 3 + SIZE * len(self.members)))
        own = [(hub.nats_port, hub.monitor_port, hub.leaf_port, next(ports))]
        more = [(next(ports), next(ports), next(ports), next(ports)) for _ in range(SIZE - 1)]
        self.servers = [
            HubServer(
                NatsServerSpec(
                    name=f"{HUB_DOMAIN}-{i}",
                    domain=HUB_DOMAIN,
                    client_port=client,
                    monitor_port=monitor,
                    store_dir=self.root / "nats" / f"{HUB_DOMAIN}-{i}",
                    leaf_port=leaf,
                    tls_cert=self.hub_material.tls_cert,
                    tls_key=self.hub_material.tls_key,
                    accounts_file=self.hub_material.accounts_file,
                ),
                cluster_port=cluster,
            )
            for i, (client, monitor, leaf, cluster) in enumerate(own + more, start=1)
        ]
        self.links = {
            plan.node_id: LinkGroup(
                [
                    LinkRelay(f"{plan.node_id}>{server.spec.name}", next(ports), leaf_port)
                    for server in self.servers
                    if (leaf_port := server.spec.leaf_port) is not None
                ]
            )
            for plan in self.members
        }

    @property
    def server_names(self) -> list[str]:
        """The supervisor's names of the hub servers' processes."""
        return [f"nats-{server.spec.name}" for server in self.servers]

    def nats_spec(self, plan: NodePlan, *, tls: bool = True) -> NatsServerSpec:
        spec = super().nats_spec(plan, tls=tls)
        if plan.is_hub:
            return spec
        scheme = "tls" if tls else "nats-leaf"
        urls = tuple(f"{scheme}://127.0.0.1:{r.port}" for r in self.links[plan.node_id].relays)
        return replace(spec, hub_leaf_urls=urls)

    def server_process(self, server: HubServer) -> ProcessSpec:
        # nats-server would tell its leaves where else to reach the cluster (each server's own
        # leaf port), and a leaf adds those to its list: the relays would be bypassed (as on
        # the single hub, tests/chaos/network.py).
        return server.process(self.servers, self.root, advertise=False)

    async def start_servers(self) -> None:
        self.postgres.prepare()
        await self.supervisor.start(self.postgres.process(self.root / "logs" / "postgres.log"))
        for plan in self.plans:
            await self.postgres.ensure_database(self.database_name(plan))
        # Together: a cluster is ready only with a quorum.
        await self.supervisor.start_all([self.server_process(s) for s in self.servers])
        await self.supervisor.start_all([self.nats_process(p) for p in self.members])

    async def wait_for_leaf_links(self, within: float = 30.0) -> None:
        """Until every member's leaf is linked to one of the hub servers."""
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(within):
            while True:  # polling the servers: nothing on this side to wait on
                linked = 0
                for server in self.servers:
                    url = f"http://{server.spec.host}:{server.spec.monitor_port}/leafz"
                    with contextlib.suppress(httpx.HTTPError):
                        linked += int((await client.get(url)).json().get("leafnodes", 0))
                if linked >= len(self.members):
                    return
                await asyncio.sleep(0.02)

    def node_env(self, plan: NodePlan) -> dict[str, str]:
        env = super().node_env(plan)
        if plan.is_hub:
            urls = [
                self.hub_material.client_url(s.spec.host, s.spec.client_port) for s in self.servers
            ]
            env |= {"RELAIS_NATS_URL": ",".join(urls), "RELAIS_STREAM_REPLICAS": str(SIZE)}
        return env


def hub_cluster_network(
    root: Path, members: Sequence[str], *, hub_org: str, secret_key: str
) -> HubClusterNetwork:
    """As ``deploy.network.on_free_ports``, with the hub clustered."""
    count = len(members) + 1
    ports = free_ports(3 * count + 1)
    plans = plan_network(
        members,
        hub_org=hub_org,
        http_ports=ports[0:count],
        nats_ports=ports[count : 2 * count],
        monitor_ports=ports[2 * count : 3 * count],
        leaf_port=ports[-1],
    )
    return HubClusterNetwork(root=root, plans=plans, secret_key=secret_key, demo=True)
