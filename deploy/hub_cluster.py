"""A hub of three nats-servers in one cluster (one JetStream domain, R3 streams) and member
leaves linked to all three, on this machine: what tests and benchmarks need to kill a hub
server under load. The single-hub templates are untouched; this one is
``deploy/nats/hub-cluster.conf.tmpl``.

It is the production hub scaled out: the hub's material from ``init_hub`` (the network CA, one
leaf-port certificate for 127.0.0.1 that all three servers show, the ``HUB`` and ``SYS``
passwords), the same accounts file on every server (``render_accounts``: one account per
member, its leaf's nkey as its only user), and leaves that check the hub against the CA and
log in with their nkey seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy import nats_server
from deploy.joining import Hub, init_hub
from deploy.nats_config import NatsServerSpec
from deploy.ports import free_ports
from deploy.processes import ProcessSpec, Supervisor
from shared.membership.accounts import OrgAccount, render_accounts
from shared.membership.joining import load_or_create_nkey, nkey_public

CLUSTER_NAME = "relais-hub"


@dataclass(frozen=True)
class HubServer:
    """One server of the hub cluster: its own ports, the shared domain, TLS and accounts."""

    spec: NatsServerSpec
    cluster_port: int

    @property
    def route(self) -> str:
        return f"nats-route://{self.spec.host}:{self.cluster_port}"

    @property
    def leaf_url(self) -> str:
        """Where a member's leaf reaches this server: TLS, as on the single hub."""
        return f"tls://{self.spec.host}:{self.spec.leaf_port}"

    def render(self, routes: list[str], config_dir: Path, *, advertise: bool = True) -> str:
        """The configuration, for a file in ``config_dir`` (the accounts file is included by a
        path relative to it); the leaf port's TLS and the include are the single hub's.
        ``advertise=False``: the server does not tell its leaves where else the cluster is
        (a leaf would add those addresses and bypass the relays a chaos test puts between)."""
        return self.spec.render(
            config_dir,
            template="hub-cluster.conf.tmpl",
            cluster_name=CLUSTER_NAME,
            cluster_port=self.cluster_port,
            routes=", ".join(f'"{route}"' for route in routes),
            advertise="" if advertise else "  no_advertise: true\n",
        )

    def process(self, peers: list[HubServer], root: Path, *, advertise: bool = True) -> ProcessSpec:
        """This server as a supervised process among ``peers`` (the whole cluster, itself
        included). Ready once it knows the meta leader and the leader sees every other server
        current: before that an R3 stream cannot be placed ("no suitable peers for placement,
        peer offline"), though ``/healthz`` already answers ok.
        """
        spec = self.spec
        config = root / "nats" / f"{spec.name}-cluster.conf"
        config.parent.mkdir(parents=True, exist_ok=True)
        routes = [peer.route for peer in peers if peer is not self]
        config.write_text(self.render(routes, config.parent, advertise=advertise))

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=1) as client:
                leader = (await _meta(client, self)).get("leader")
                chosen = next((peer for peer in peers if peer.spec.name == leader), None)
                # Only the leader's view of the others is current: a follower sees the other
                # followers as not current.
                return chosen is not None and whole(await _meta(client, chosen), size=len(peers))

        return ProcessSpec(
            name=f"nats-{spec.name}",
            argv=[nats_server.binary(), "-c", str(config)],
            log_path=root / "logs" / f"nats-{spec.name}.log",
            ready=ready,
            ready_timeout=60,
        )


async def _meta(client: httpx.AsyncClient, server: HubServer) -> dict[str, Any]:
    spec = server.spec
    jsz = (await client.get(f"http://{spec.host}:{spec.monitor_port}/jsz")).json()
    return dict(jsz.get("meta_cluster") or {})


def whole(meta: dict[str, Any], *, size: int) -> bool:
    """Whether the meta leader's ``/jsz`` ``meta_cluster`` shows a cluster of ``size`` with
    every other server current and online."""
    others = meta.get("replicas") or []
    return (
        bool(meta.get("leader"))
        and meta.get("cluster_size") == size
        and len(others) == size - 1
        and all(peer.get("current") and not peer.get("offline") for peer in others)
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
    material: Hub = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        ports = iter(free_ports(4 * self.size + 2 * len(self.members)))
        hub_ports = [(next(ports), next(ports), next(ports), next(ports)) for _ in range(self.size)]
        # The CA, the leaf-port certificate (for 127.0.0.1: the three servers share it, a
        # certificate names a host, not a port) and the HUB and SYS users, as `relais hub init`.
        self.material = init_hub(self.root / "hub", f"127.0.0.1:{hub_ports[0][2]}")
        self.material.accounts_file.write_text(
            render_accounts(
                [
                    OrgAccount(org, nkey_public(load_or_create_nkey(self.key_dir(org))))
                    for org in self.members
                ],
                hub_domain=self.domain,
                # Every server holds a copy of each R3 stream: the account's storage is the
                # streams' times the servers (else they cannot be made).
                replicas=self.size,
                # A leaf failing over from a killed server may find its old link still counted
                # by the others for a while; one link per credential is not checked on a cluster.
                leaf_links=2,
            )
        )
        self.servers = [
            HubServer(
                NatsServerSpec(
                    name=f"hub-{i}",
                    domain=self.domain,
                    client_port=client,
                    monitor_port=monitor,
                    store_dir=self.root / "nats" / f"hub-{i}",
                    leaf_port=leaf,
                    tls_cert=self.material.tls_cert,
                    tls_key=self.material.tls_key,
                    accounts_file=self.material.accounts_file,
                ),
                cluster_port=cluster,
            )
            for i, (client, monitor, leaf, cluster) in enumerate(hub_ports, start=1)
        ]
        leaf_urls = tuple(s.leaf_url for s in self.servers)
        self.leaves = [
            NatsServerSpec(
                name=org,
                domain=org,
                client_port=next(ports),
                monitor_port=next(ports),
                store_dir=self.root / "nats" / org,
                hub_leaf_urls=leaf_urls,
                ca_file=self.material.ca_file,
                nkey_seed=bytes(load_or_create_nkey(self.key_dir(org)).seed).decode(),
            )
            for org in self.members
        ]

    def key_dir(self, org: str) -> Path:
        return self.root / "keys" / org

    @property
    def hub_urls(self) -> list[str]:
        """The three servers, logged in as the ``HUB`` account (the hub's services' user)."""
        return [self.material.client_url(s.spec.host, s.spec.client_port) for s in self.servers]

    def leaf(self, org: str) -> NatsServerSpec:
        return next(leaf for leaf in self.leaves if leaf.name == org)

    def server_process(self, server: HubServer) -> ProcessSpec:
        return server.process(self.servers, self.root)

    def leaf_process(self, leaf: NatsServerSpec) -> ProcessSpec:
        return nats_server.process(leaf, config_dir=self.root / "nats", log_dir=self.root / "logs")

    async def start(self) -> None:
        """The hub servers together (a cluster needs a quorum to be ready), then the leaves."""
        await self.supervisor.start_all([self.server_process(s) for s in self.servers])
        await self.supervisor.start_all([self.leaf_process(leaf) for leaf in self.leaves])

    async def stop(self) -> None:
        await self.supervisor.stop_all()
