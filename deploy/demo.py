"""``relais demo``: the fictional network on this machine, seeded, until Ctrl-C.

Writes ``<root>/credentials.json`` (a contract outside scripts rely on): every node's URL,
database and NATS URLs, and its demo users with their passwords and bearer tokens. Demo only:
a real node never writes secrets in clear.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from deploy.demo_network import HUB, MEMBERS, DemoOrg, record
from deploy.joining import init_node, install_credentials, issue_credentials
from deploy.network import Network, NodePlan, plan_network
from deploy.ports import free_ports
from deploy.processes import ProcessSpec
from services.auth import clients as member_clients
from shared import db
from shared.auth import add_user, issue_access_token
from shared.contracts.directory import MembershipStatus, OrganisationPublished, PublicKey
from shared.crypto import NodeKeys
from shared.errors import Conflict
from shared.feed import FEED
from shared.nats_users import inbox_prefix
from shared.settings import DEMO_SECRET

TOKEN_TTL = timedelta(days=30)


@dataclass(frozen=True)
class DemoPorts:
    http: int = 8000
    nats: int = 4222
    monitor: int = 8222
    leaf: int = 7422


# The demo folder's layout: 2 since each organisation has its own NATS account on the hub (the
# streams of an earlier demo, all in one account, cannot be taken over).
LAYOUT, LAYOUT_FILE = "2", "layout"


def retire_earlier_data(root: Path) -> Path | None:
    """Move aside a demo folder made by an earlier release that this one cannot reuse (its data
    is the demo's own: nothing real is lost), and return where it went; then mark ``root``."""
    aside = None
    marker = root / LAYOUT_FILE
    if root.exists() and any(root.iterdir()):
        if marker.exists() and marker.read_text().strip() == LAYOUT:
            return None
        aside = root.with_name(f"{root.name}.before-{time.strftime('%Y%m%dT%H%M%S')}")
        root.rename(aside)
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(LAYOUT + "\n")
    return aside


def demo_network(
    root: Path, ports: DemoPorts = DemoPorts(), orgs: tuple[DemoOrg, ...] = MEMBERS
) -> Network:
    count = len(orgs) + 1
    plans = plan_network(
        [o.org_id for o in orgs],
        hub_org=HUB.org_id,
        http_ports=[ports.http + i for i in range(count)],
        nats_ports=[ports.nats + i for i in range(count)],
        monitor_ports=[ports.monitor + i for i in range(count)],
        leaf_port=ports.leaf,
    )
    return Network(root=root, plans=plans, secret_key=DEMO_SECRET, demo=True)


def _org_of(plan: NodePlan) -> DemoOrg:
    return next(o for o in (HUB, *MEMBERS) if o.org_id == plan.org)


async def seed_users(
    network: Network, previous: dict[str, Any], plans: list[NodePlan]
) -> dict[str, list[dict[str, str]]]:
    """These nodes' demo users, created once with a kept password, each with a fresh token."""
    users: dict[str, list[dict[str, str]]] = {}
    for plan in plans:
        known = {
            u["username"]: u["password"]
            for u in previous.get("nodes", {}).get(plan.node_id, {}).get("users", [])
        }
        pool = await db.create_pool(network.database_url(plan), max_size=2)
        try:
            users[plan.node_id] = []
            for username, role in _org_of(plan).users:
                password = known.get(username) or secrets.token_urlsafe(12)
                try:
                    await add_user(pool, username, password, role)
                except Conflict:
                    if username not in known:
                        raise  # a user we cannot give a password for: refuse to guess
                token = await issue_access_token(pool, username, TOKEN_TTL)
                users[plan.node_id].append(
                    {"username": username, "password": password, "role": role, "token": token}
                )
        finally:
            await pool.close()
    return users


async def publish_directory(network: Network, coordinator_token: str) -> None:
    """Publish every demo organisation from the hub, unless the hub already has it as is: the
    secretariat's own record directly, each member through its node's signed application,
    admitted, with its credentials written beside its keys."""
    hub = network.hub
    headers = {"Authorization": f"Bearer {coordinator_token}"}
    async with httpx.AsyncClient(base_url=hub.url, headers=headers, timeout=30) as client:
        for plan in network.plans:
            org = _org_of(plan)
            # The node makes the same keys at start; the public halves go in its record.
            keys = NodeKeys.load_or_create(network.key_dir(plan)).public_keys()
            wanted = [PublicKey.model_validate(key) for key in keys]
            current = await client.get(f"/api/v1/directory/organisations/{org.org_id}")
            wanted_record = record(org, version=1, node_url=plan.url, keys=wanted)
            if current.status_code != 200 and not plan.is_hub:
                await _admit(network, plan, client, wanted_record)
                continue
            if current.status_code == 200:
                held = OrganisationPublished.model_validate(current.json())
                # Membership is the coordinators' (they may have suspended one): keep it.
                wanted_record = wanted_record.model_copy(
                    update={
                        "version": held.version,
                        "status": held.status,
                        "status_reason": held.status_reason,
                    }
                )
                if held != wanted_record:
                    wanted_record = wanted_record.model_copy(update={"version": held.version + 1})
                    response = await client.put(
                        f"/api/v1/directory/organisations/{org.org_id}",
                        json=wanted_record.model_dump(mode="json"),
                    )
                    response.raise_for_status()
            else:  # the secretariat's own record: it applies, then the coordinator admits it
                applicant = wanted_record.model_copy(update={"status": MembershipStatus.APPLICANT})
                response = await client.put(
                    f"/api/v1/directory/organisations/{org.org_id}",
                    json=applicant.model_dump(mode="json"),
                )
                response.raise_for_status()
                await _membership(client, org.org_id, "admit")
            if not plan.is_hub:
                await _fetch_credentials(network, plan, client)


async def _admit(
    network: Network, plan: NodePlan, client: httpx.AsyncClient, wanted: OrganisationPublished
) -> None:
    """What ``relais node init`` and ``relais hub admit`` do, for a demo node."""
    draft = wanted.model_copy(update={"status": MembershipStatus.APPLICANT})
    application = init_node(network.key_dir(plan), draft, network.hub_material.address)
    response = await client.post(
        "/api/v1/directory/applications",
        json={"application": application.model_dump(mode="json")},
    )
    response.raise_for_status()
    await _membership(client, plan.org, "admit")
    await _fetch_credentials(network, plan, client)


async def _membership(client: httpx.AsyncClient, org_id: str, action: str) -> None:
    response = await client.post(
        f"/api/v1/directory/organisations/{org_id}/membership", json={"action": action}
    )
    response.raise_for_status()


async def _fetch_credentials(network: Network, plan: NodePlan, client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/directory/organisations/{plan.org}/credentials")
    response.raise_for_status()
    issued = issue_credentials(network.hub_material, response.json(), hub_org=network.hub.org)
    install_credentials(network.key_dir(plan), issued)


async def wait_for_roster(network: Network, tokens: dict[str, str], within: float = 60) -> None:
    """Until every node's directory replica lists every organisation: the broadcast flow works."""
    expected = {p.org for p in network.plans}
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5) as client:
        for plan in network.plans:
            while True:
                response = await client.get(
                    f"{plan.url}/api/v1/directory/organisations",
                    headers={"Authorization": f"Bearer {tokens[plan.node_id]}"},
                )
                if (
                    response.status_code == 200
                    and {o["org_id"] for o in response.json()} >= expected
                ):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {plan.node_id} did not receive the directory")
                await asyncio.sleep(0.2)


def credentials(network: Network, users: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    return {
        "nodes": {
            plan.node_id: {
                "org": plan.org,
                "role": plan.role.value,
                "url": plan.url,
                "database_url": network.database_url(plan),
                "nats_url": plan.nats_url,
                "monitor_url": f"http://127.0.0.1:{plan.monitor_port}",
                "users": users[plan.node_id],
                "clients": demo_clients(network, plan),
            }
            for plan in network.plans
        }
    }


DEMO_CLIENT = "crm"  # each member's case-management system, as the demo imagines it
DEMO_CLIENT_ROLES = ("caseworker", "focal_point")  # it sends referrals and answers them


def _clients_dir(network: Network, plan: NodePlan) -> Path:
    return network.key_dir(plan) / "clients"


def demo_clients(network: Network, plan: NodePlan) -> list[dict[str, Any]]:
    """The member-system clients the demo made on this node, as a developer starts from them:
    the API token, and the NATS address, nkey seed file, inbox prefix and feed consumer."""
    found = []
    for path in sorted(_clients_dir(network, plan).glob("*.json")):
        kept = json.loads(path.read_text())
        name = kept["name"]
        found.append(
            {
                "name": name,
                "roles": kept["roles"],
                "token": kept["token"],
                "nats": {
                    "url": f"nats://127.0.0.1:{plan.nats_port}",
                    "nkey_seed_file": str(path.with_suffix(".nk")),
                    "inbox_prefix": inbox_prefix(name),
                    "feed": {"stream": FEED, "consumer": name},
                },
            }
        )
    return found


async def seed_clients(network: Network, plans: list[NodePlan]) -> None:
    """One member-system client per member node, made once and kept with the node's keys (demo
    only: a real node shows the token and seed once, to its administrator)."""
    for plan in plans:
        folder = _clients_dir(network, plan)
        if any(folder.glob("*.json")):
            continue
        pool = await db.create_pool(network.database_url(plan), max_size=2)
        try:
            name, n = DEMO_CLIENT, 1
            while await member_clients.get(pool, name) is not None:  # an earlier demo's
                n += 1
                name = f"{DEMO_CLIENT}{n}"
            made = await member_clients.create(
                pool, name, plan.org, DEMO_CLIENT_ROLES, "demo", on_hub=plan.is_hub
            )
        finally:
            await pool.close()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        kept = {"name": name, "roles": list(DEMO_CLIENT_ROLES), "token": made.token}
        _write_private(folder / f"{name}.nk", made.nkey_seed + "\n")
        _write_private(folder / f"{name}.json", json.dumps(kept))


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


async def bring_up(network: Network, previous: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Start the nodes and seed them; returns every node's users once the roster has spread.

    The hub comes first and publishes the directory, which creates its streams for each
    member, so that the members' inboxes find their source at once rather than on a retry.
    """
    await network.start_nodes([network.hub])
    users = await seed_users(network, previous, [network.hub])
    coordinator = next(u for u in users[network.hub.node_id] if u["role"] == "coordinator")
    await publish_directory(network, coordinator["token"])
    await network.wait_for_leaf_links()  # the hub's directory gave each member its account
    await network.start_nodes(network.members)
    users |= await seed_users(network, previous, network.members)
    await seed_clients(network, network.members)
    await wait_for_roster(network, {node: found[0]["token"] for node, found in users.items()})
    return users


def mail_server(network: Network) -> ProcessSpec:
    """A local SMTP server (aiosmtpd) writing every message the demo sends to
    ``<root>/mail/`` as a Maildir; the nodes send their notifications there."""
    (port,) = free_ports(1)
    maildir = network.root / "mail"

    async def ready() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    network.extra_env.update({"RELAIS_SMTP_HOST": "127.0.0.1", "RELAIS_SMTP_PORT": str(port)})
    return ProcessSpec(
        name="demo-mail",
        argv=[
            *(sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"),
            *("-c", "aiosmtpd.handlers.Mailbox", str(maildir)),
        ],
        log_path=network.root / "logs" / "demo-mail.log",
        ready=ready,
    )


async def seed_contacts(creds: dict[str, Any]) -> None:
    """Give each demo user an e-mail address (``<user>@<org>.example``) for notifications,
    unless they already chose one."""
    async with httpx.AsyncClient(timeout=10) as client:
        for node in creds["nodes"].values():
            for user in node["users"]:
                url = f"{node['url']}/api/v1/notifications/preferences"
                headers = {"Authorization": f"Bearer {user['token']}"}
                current = (await client.get(url, headers=headers)).raise_for_status().json()
                if current.get("email"):
                    continue
                chosen = {**current, "email": f"{user['username']}@{node['org']}.example"}
                for key in ("username", "available"):
                    chosen.pop(key, None)
                (await client.put(url, headers=headers, json=chosen)).raise_for_status()


async def start_demo(network: Network, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Start, seed, and wait until the whole network works; returns the credentials."""
    path = network.root / "credentials.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    say("Starting PostgreSQL and NATS…")
    await network.start_servers()
    await network.supervisor.start(mail_server(network))
    say("Starting the nodes…")
    users = await bring_up(network, previous)
    creds = credentials(network, users)
    await seed_contacts(creds)
    path.write_text(json.dumps(creds, indent=2, ensure_ascii=False))
    path.chmod(0o600)
    return creds
