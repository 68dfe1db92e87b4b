"""A network of Relais nodes on one machine: the launcher behind ``relais demo``, the tests
and the benchmarks.

One PostgreSQL server (one database per node), one nats-server per node (the hub's, and a
leaf per member organisation, each its own JetStream domain), and one node process per node
serving its HTTP port. Everything lives under one root folder and is stopped on exit.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from deploy import nats_server
from deploy.joining import CREDENTIALS_FILE, Hub, init_hub
from deploy.nats_config import NatsServerSpec
from deploy.ports import free_ports
from deploy.postgres import EmbeddedPostgres
from deploy.processes import ProcessSpec, Supervisor
from shared.federation import HUB_ACCOUNT
from shared.membership.joining import load_or_create_nkey
from shared.nats_users import (
    NATS_USERS_FILE,
    SERVICES_USER,
    load_or_create_nats_secrets,
    write_if_changed,
)
from shared.nats_users import render as render_users
from shared.settings import NodeRole

HUB_DOMAIN = "hub"


@dataclass(frozen=True)
class NodePlan:
    """One node to run: who it belongs to and on which ports."""

    node_id: str
    org: str
    role: NodeRole
    http_port: int
    nats_port: int
    monitor_port: int
    leaf_port: int | None = None  # the hub's only
    nats_login: str = ""  # the hub's: its services' NATS user and password, "user:password@"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://{self.nats_login}127.0.0.1:{self.nats_port}"

    @property
    def is_hub(self) -> bool:
        return self.role is NodeRole.SECRETARIAT


def plan_network(
    orgs: Sequence[str],
    *,
    hub_org: str,
    http_ports: Sequence[int],
    nats_ports: Sequence[int],
    monitor_ports: Sequence[int],
    leaf_port: int,
) -> list[NodePlan]:
    """The hub first, then one node per member organisation, on the given ports."""
    plans = [
        NodePlan(
            HUB_DOMAIN,
            hub_org,
            NodeRole.SECRETARIAT,
            http_ports[0],
            nats_ports[0],
            monitor_ports[0],
            leaf_port,
        )
    ]
    for i, org in enumerate(orgs, start=1):
        plans.append(
            NodePlan(org, org, NodeRole.MEMBER, http_ports[i], nats_ports[i], monitor_ports[i])
        )
    return plans


@dataclass
class Network:
    """Starts and stops the servers and nodes of ``plans`` under ``root``."""

    root: Path
    plans: list[NodePlan]
    secret_key: str
    demo: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor = field(default_factory=Supervisor)
    postgres: EmbeddedPostgres = field(init=False)
    hub_material: Hub = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.postgres = EmbeddedPostgres(self.root / "postgres")
        # The network CA, the hub's certificate and its NATS users, made once and kept.
        self.hub_material = init_hub(self.root / "hub", f"127.0.0.1:{self.hub.leaf_port}")
        login = f"{HUB_ACCOUNT.lower()}:{self.hub_material.hub_password}@"
        self.plans = [
            replace(p, nats_login=login if p.is_hub else self._member_login(p)) for p in self.plans
        ]

    def _member_login(self, plan: NodePlan) -> str:
        """A member's services' NATS user and password, made once and kept with its keys; its
        nats-server's users file starts with them alone (the node adds its clients)."""
        secrets = load_or_create_nats_secrets(self.key_dir(plan))
        users = self.nats_users_file(plan)
        if not users.exists():
            write_if_changed(users, render_users(SERVICES_USER, secrets["services"], []))
        return f"{SERVICES_USER}:{secrets['services']}@"

    def nats_users_file(self, plan: NodePlan) -> Path:
        return self.key_dir(plan) / NATS_USERS_FILE

    def system_url(self, plan: NodePlan) -> str:
        secret = load_or_create_nats_secrets(self.key_dir(plan))["system"]
        return f"nats://sys:{secret}@127.0.0.1:{plan.nats_port}"

    @property
    def hub(self) -> NodePlan:
        return next(p for p in self.plans if p.is_hub)

    def plan(self, node_id: str) -> NodePlan:
        return next(p for p in self.plans if p.node_id == node_id)

    def nats_spec(self, plan: NodePlan, *, tls: bool = True) -> NatsServerSpec:
        """``tls=False``: a leaf that does not speak TLS (the hub refuses it; tests)."""
        hub = self.hub_material
        common = {
            "name": plan.node_id,
            "domain": plan.node_id,
            "client_port": plan.nats_port,
            "monitor_port": plan.monitor_port,
            "store_dir": self.root / "nats" / plan.node_id,
        }
        if plan.is_hub:
            return NatsServerSpec(
                **common,  # type: ignore[arg-type]
                leaf_port=plan.leaf_port,
                tls_cert=hub.tls_cert,
                tls_key=hub.tls_key,
                accounts_file=hub.accounts_file,
            )
        urls = (
            hub.leaf_urls if tls else [u.replace("tls://", "nats-leaf://") for u in hub.leaf_urls]
        )
        return NatsServerSpec(
            **common,  # type: ignore[arg-type]
            hub_leaf_urls=tuple(urls),
            ca_file=hub.ca_file if tls else None,
            nkey_seed=self.nkey_seed(plan),
            users_file=self.nats_users_file(plan),
            system_password=load_or_create_nats_secrets(self.key_dir(plan))["system"],
        )

    def nkey_seed(self, plan: NodePlan) -> str:
        return bytes(load_or_create_nkey(self.key_dir(plan)).seed).decode()

    def credentials_file(self, plan: NodePlan) -> Path:
        return self.key_dir(plan) / CREDENTIALS_FILE

    def key_dir(self, plan: NodePlan) -> Path:
        return self.root / "keys" / plan.node_id

    def database_name(self, plan: NodePlan) -> str:
        return f"relais_{plan.node_id}"

    def database_url(self, plan: NodePlan) -> str:
        return self.postgres.url(self.database_name(plan))

    # -- the servers -----------------------------------------------------------------------

    async def start_servers(self) -> None:
        """PostgreSQL, each node's database, and every nats-server (the hub first). A member's
        leaf links once the hub's directory has admitted it (``deploy.demo.bring_up``)."""
        self.postgres.prepare()
        await self.supervisor.start(self.postgres.process(self.root / "logs" / "postgres.log"))
        for plan in self.plans:
            await self.postgres.ensure_database(self.database_name(plan))
        await self.supervisor.start(self.nats_process(self.hub))
        await self.supervisor.start_all([self.nats_process(p) for p in self.members])

    async def wait_for_leaf_links(self, within: float = 30.0) -> None:
        """Until every member's leaf is linked to the hub: a stream that sources across a link
        that is not up yet retries only after nats-server's back-off (10 s, then longer)."""
        url = f"http://127.0.0.1:{self.hub.monitor_port}/leafz"
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(within):
            while True:  # polling the server: nothing on this side to wait on
                if (await client.get(url)).json().get("leafnodes", 0) >= len(self.members):
                    return
                await asyncio.sleep(0.02)

    def nats_process(self, plan: NodePlan) -> ProcessSpec:
        return nats_server.process(
            self.nats_spec(plan), config_dir=self.root / "nats", log_dir=self.root / "logs"
        )

    # -- the nodes -------------------------------------------------------------------------

    def node_env(self, plan: NodePlan) -> dict[str, str]:
        hub = self.hub_material
        if plan.is_hub:
            federation = {
                "RELAIS_NATS_ACCOUNTS_FILE": str(hub.accounts_file),
                "RELAIS_NATS_SYSTEM_URL": hub.system_url("127.0.0.1", plan.nats_port),
            }
        else:
            federation = {
                "RELAIS_HUB_ADDRESS": hub.address,
                "RELAIS_CREDENTIALS_FILE": str(self.credentials_file(plan)),
                "RELAIS_NATS_USERS_FILE": str(self.nats_users_file(plan)),
                "RELAIS_NATS_SYSTEM_URL": self.system_url(plan),
            }
        return {
            **federation,
            "RELAIS_NODE_ID": plan.node_id,
            "RELAIS_ORG": plan.org,
            "RELAIS_ROLE": plan.role.value,
            "RELAIS_HUB_DOMAIN": HUB_DOMAIN,
            "RELAIS_NATS_URL": plan.nats_url,
            "RELAIS_DATABASE_URL": self.database_url(plan),
            "RELAIS_HTTP_PORT": str(plan.http_port),
            "RELAIS_SECRET_KEY": self.secret_key,
            "RELAIS_DEMO": "true" if self.demo else "false",
            "RELAIS_KEY_DIR": str(self.key_dir(plan)),
            **self.extra_env,
        }

    def node_process(self, plan: NodePlan) -> ProcessSpec:
        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{plan.url}/readyz")).status_code == 200

        return ProcessSpec(
            name=f"node-{plan.node_id}",
            argv=[sys.executable, "-m", "deploy.node"],
            env=self.node_env(plan),
            log_path=self.root / "logs" / f"node-{plan.node_id}.log",
            ready=ready,
            ready_timeout=60,
        )

    @property
    def members(self) -> list[NodePlan]:
        return [p for p in self.plans if not p.is_hub]

    async def start_nodes(self, plans: Sequence[NodePlan] | None = None) -> None:
        """Start these nodes (all by default) at once and wait until each is ready."""
        chosen = self.plans if plans is None else plans
        await self.supervisor.start_all([self.node_process(plan) for plan in chosen])

    async def stop(self) -> None:
        await self.supervisor.stop_all()


def on_free_ports(root: Path, members: Sequence[str], *, hub_org: str, secret_key: str) -> Network:
    """A demo-mode network whose servers listen on free loopback ports (tests, benchmarks)."""
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
    return Network(root=root, plans=plans, secret_key=secret_key, demo=True)
