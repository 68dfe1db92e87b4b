"""The chaos suite's own network: a hub and three members (two send, one receives), started by
the project's launcher (``deploy.network``, ``deploy.demo.bring_up``) exactly as the demo is,
except that each member's leaf reaches the hub through a ``LinkRelay`` the suite can cut."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from deploy.demo import bring_up, credentials
from deploy.nats_config import NatsServerSpec
from deploy.network import Network, NodePlan, on_free_ports
from deploy.ports import free_ports
from deploy.processes import ProcessSpec
from shared.settings import DEMO_SECRET
from tests.chaos.cluster import hub_cluster_network
from tests.chaos.link import LinkRelay

SENDERS = ("sanad", "jusoor")
RECIPIENT = "amal"
MEMBERS = ("sanad", "amal", "jusoor")


class Link(Protocol):
    """A member's leaf link to the hub that the suite can cut: a ``LinkRelay``, or on a hub
    cluster a ``LinkGroup`` (one relay per hub server)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def cut(self) -> int: ...
    def heal(self) -> None: ...


@dataclass
class ChaosNetwork:
    """The running network, its relays and the demo-style credentials (``credentials.json``
    under ``root``, which ``relais audit verify --node`` reads)."""

    net: Network
    relays: dict[str, Link]
    creds: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.net.root

    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    def token(self, node: str, role: str) -> str:
        users = self.creds["nodes"][node]["users"]
        return str(next(u["token"] for u in users if u["role"] == role))

    def url(self, node: str) -> str:
        return str(self.creds["nodes"][node]["url"])


def relayed(net: Network, ports: Mapping[str, int]) -> None:
    """Point each member's leaf at its relay's port instead of the hub's leaf port."""
    original = net.nats_spec

    def nats_spec(plan: NodePlan, *, tls: bool = True) -> NatsServerSpec:
        spec = original(plan, tls=tls)
        port = ports.get(plan.node_id)
        if port is None:
            return spec
        hub_port = f":{net.hub.leaf_port}"
        urls = tuple(u.replace(hub_port, f":{port}") for u in spec.hub_leaf_urls)
        return replace(spec, hub_leaf_urls=urls)

    net.nats_spec = nats_spec  # type: ignore[method-assign]
    original_process = net.nats_process

    def nats_process(plan: NodePlan) -> ProcessSpec:
        process = original_process(plan)
        if plan.is_hub:
            # nats-server tells its leaves where else to reach it (its own leaf port), and a
            # leaf adds that to its list: the relay would be bypassed. A hub behind a NAT or
            # a load balancer is told not to; here too.
            config = Path(process.argv[-1])
            text = config.read_text()
            config.write_text(
                text.replace("leafnodes {\n", "leafnodes {\n  no_advertise: true\n", 1)
            )
        return process

    net.nats_process = nats_process  # type: ignore[method-assign]


@asynccontextmanager
async def chaos_network(
    keep: bool = False, hub_cluster: bool = False
) -> AsyncIterator[ChaosNetwork]:
    """``hub_cluster``: the hub's nats-server is three clustered servers (chaos/cluster.py)."""
    # A short root: PostgreSQL's Unix socket path must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="relais-chaos-"))
    net: Network
    relays: dict[str, Link]
    if hub_cluster:
        cluster = hub_cluster_network(root, MEMBERS, hub_org="secretariat", secret_key=DEMO_SECRET)
        net, relays = cluster, dict(cluster.links)
    else:
        net = on_free_ports(root, MEMBERS, hub_org="secretariat", secret_key=DEMO_SECRET)
        assert net.hub.leaf_port is not None
        ports = free_ports(len(MEMBERS))
        single = {
            m: LinkRelay(m, port, net.hub.leaf_port) for m, port in zip(MEMBERS, ports, strict=True)
        }
        relayed(net, {m: relay.port for m, relay in single.items()})
        relays = dict(single)
    chaos = ChaosNetwork(net, relays)
    try:
        for relay in relays.values():
            await relay.start()
        await net.start_servers()
        users = await bring_up(net, {})
        chaos.creds = credentials(net, users)
        chaos.credentials_file.write_text(json.dumps(chaos.creds, indent=2))
        chaos.credentials_file.chmod(0o600)
        yield chaos
    finally:
        await net.stop()
        for relay in relays.values():
            await relay.stop()
        if keep:
            print(f"kept the chaos network's files (logs/) in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
