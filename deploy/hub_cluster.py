"""A hub of three nats-servers in one cluster (one JetStream domain, R3 streams) and member
leaves linked to all three, on this machine: what tests and benchmarks need to kill a hub
server under load. The single-hub templates are untouched; this one is
``deploy/nats/hub-cluster.conf.tmpl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import httpx

from deploy import nats_server
from deploy.nats_config import TEMPLATES, NatsServerSpec
from deploy.ports import free_ports
from deploy.processes import ProcessSpec, Supervisor

CLUSTER_NAME = "relais-hub"


@dataclass(frozen=True)
class HubServer:
    """One server of the hub cluster: its own ports, the shared domain."""

    spec: NatsServerSpec
    cluster_port: int

    @property
    def route(self) -> str:
        return f"nats-route://{self.spec.host}:{self.cluster_port}"

    def render(self, routes: list[str]) -> str:
        spec = self.spec
        return Template((TEMPLATES / "hub-cluster.conf.tmpl").read_text()).substitute(
            server_name=spec.name,
            host=spec.host,
            client_port=spec.client_port,
            monitor_port=spec.monitor_port,
            store_dir=str(spec.store_dir),
            domain=spec.domain,
            leaf_port=spec.leaf_port or "",
            cluster_name=CLUSTER_NAME,
            cluster_port=self.cluster_port,
            routes=", ".join(f'"{route}"' for route in routes),
        )


@dataclass
class HubCluster:
    """``size`` hub servers (``hub-1``...) and one leaf per member, under ``root``."""

    root: Path
    members: tuple[str, ...]
    size: int = 3
    domain: str = "hub"
    supervisor: Supervisor = field(default_factory=Supervisor)
    servers: list[HubServer] = field(init=False)
    leaves: list[NatsServerSpec] = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        ports = iter(free_ports(4 * self.size + 2 * len(self.members)))
        self.servers = [
            HubServer(
                NatsServerSpec(
                    name=f"hub-{i}",
                    domain=self.domain,
                    client_port=next(ports),
                    monitor_port=next(ports),
                    store_dir=self.root / "nats" / f"hub-{i}",
                    leaf_port=next(ports),
                ),
                cluster_port=next(ports),
            )
            for i in range(1, self.size + 1)
        ]
        leaf_urls = tuple(s.spec.leaf_url for s in self.servers)
        self.leaves = [
            NatsServerSpec(
                name=org,
                domain=org,
                client_port=next(ports),
                monitor_port=next(ports),
                store_dir=self.root / "nats" / org,
                hub_leaf_urls=leaf_urls,
            )
            for org in self.members
        ]

    @property
    def hub_urls(self) -> list[str]:
        return [s.spec.client_url for s in self.servers]

    def leaf(self, org: str) -> NatsServerSpec:
        return next(leaf for leaf in self.leaves if leaf.name == org)

    def server_process(self, server: HubServer) -> ProcessSpec:
        spec = server.spec
        config = self.root / "nats" / f"{spec.name}-cluster.conf"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(server.render([s.route for s in self.servers if s is not server]))

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=1) as client:
                response = await client.get(f"http://{spec.host}:{spec.monitor_port}/healthz")
                return response.status_code == 200

        return ProcessSpec(
            name=f"nats-{spec.name}",
            argv=[nats_server.binary(), "-c", str(config)],
            log_path=self.root / "logs" / f"nats-{spec.name}.log",
            ready=ready,
            ready_timeout=60,
        )

    def leaf_process(self, leaf: NatsServerSpec) -> ProcessSpec:
        return nats_server.process(leaf, config_dir=self.root / "nats", log_dir=self.root / "logs")

    async def start(self) -> None:
        """The hub servers together (a cluster needs a quorum to be ready), then the leaves."""
        await self.supervisor.start_all([self.server_process(s) for s in self.servers])
        await self.supervisor.start_all([self.leaf_process(leaf) for leaf in self.leaves])

    async def stop(self) -> None:
        await self.supervisor.stop_all()
