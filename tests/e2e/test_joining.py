"""A new organisation joins the running network the way its operator and the secretariat do it,
with the command line: ``relais node init`` on the new node, ``relais hub admit`` at the
secretariat, ``relais node join`` back on the node; then the node's own nats-server links to
the hub as a leaf in the organisation's own account. Renewal, a second admission and
credentials meant for another node are tried on the same organisation.

The organisation gets an id of its own per run and its nats-server is stopped at the end of
the test that starts it: the other tests find the hub's leaf links as they were."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from deploy import nats_server
from deploy.joining import APPLICATION_FILE, CA_FILE, CREDENTIALS_FILE
from deploy.nats_config import NatsServerSpec
from deploy.network import Network
from deploy.node import credentials_problem
from deploy.ports import free_ports
from shared.crypto import NodeKeys
from shared.federation import account_api
from shared.membership.joining import NKEY_SEED_FILE, Credentials, load_or_create_nkey, nkey_public
from shared.settings import NodeSettings
from tests.e2e.conftest import client, relais, user
from tests.waiting import eventually


def a_new_org_id() -> str:
    return f"joining_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Secretariat:
    """What the secretariat's operator passes to ``relais hub admit|renew``."""

    hub_url: str
    token: str
    folder: Path

    def options(self) -> list[str | Path]:
        return ["--hub-url", self.hub_url, "--token", self.token, "--dir", self.folder]


@dataclass(frozen=True)
class Joined:
    org: str
    folder: Path
    admitted: tuple[int, str]
    issued: Path  # the file relais hub admit wrote
    joined: tuple[int, str]

    def installed(self) -> Credentials:
        return Credentials.model_validate_json((self.folder / CREDENTIALS_FILE).read_bytes())

    def nkey(self) -> str:
        return nkey_public(load_or_create_nkey(self.folder))


@pytest.fixture(scope="module")
def secretariat(network: Network, running_network: dict[str, Any]) -> Secretariat:
    return Secretariat(
        hub_url=running_network["nodes"]["hub"]["url"],
        token=user(running_network, "hub", "coordinator")["token"],
        folder=network.hub_material.folder,
    )


@pytest.fixture(scope="module")
async def joined(
    network: Network, secretariat: Secretariat, tmp_path_factory: pytest.TempPathFactory
) -> Joined:
    """A new organisation, from ``relais node init`` to ``relais node join``."""
    org, folder = a_new_org_id(), tmp_path_factory.mktemp("new-node")
    code, out = await relais(
        "node", "init", "--org", org, "--hub", network.hub_material.address, "--dir", folder,
        "--name", "Association Nouvelle", "--city", "rabat",
    )  # fmt: skip
    assert code == 0, out
    issued = folder / "creds.json"
    admitted = await relais(
        "hub", "admit", folder / APPLICATION_FILE, *secretariat.options(), "--out", issued
    )
    joined = await relais("node", "join", issued, "--dir", folder)
    return Joined(org, folder, admitted, issued, joined)


async def leaf_accounts(network: Network) -> dict[str, str]:
    """The hub's leaf links: the account each is in, by the leaf's server name."""
    async with httpx.AsyncClient(timeout=3) as http:
        leafz = (await http.get(f"http://127.0.0.1:{network.hub.monitor_port}/leafz")).json()
    return {leaf["name"]: leaf["account"] for leaf in leafz.get("leafs") or []}


def account_block(accounts: str, org: str) -> str:
    """The ``ORG_<org>`` account of the hub's accounts file, or ``""``."""
    found = re.search(rf"^  ORG_{org}: \{{\n(.*?)^  \}}$", accounts, re.MULTILINE | re.DOTALL)
    return found.group(1) if found else ""


class TestJoiningWithTheCommandLine:
    async def test_the_secretariat_admits_the_node_and_the_node_installs_its_credentials(
        self, joined: Joined
    ) -> None:
        code, out = joined.admitted
        assert code == 0, out
        assert f"{joined.org} admitted" in out
        code, out = joined.joined
        assert code == 0, out
        assert str(joined.folder / CREDENTIALS_FILE) in out
        assert (joined.folder / "leaf-remote.conf").stat().st_mode & 0o077 == 0  # holds the seed

    async def test_the_organisation_is_in_the_hubs_directory(
        self, joined: Joined, running_network: dict[str, Any]
    ) -> None:
        async with client(running_network, "hub", "coordinator") as hub:
            response = await hub.get(f"/api/v1/directory/organisations/{joined.org}")
        assert response.status_code == 200, response.text
        record = response.json()
        assert record["status"] == "active"
        assert record["name"]["fr"] == "Association Nouvelle"
        signing = NodeKeys.load_or_create(joined.folder).public_keys()[0]["key_id"]
        assert signing in {key["key_id"] for key in record["keys"]}

    async def test_the_hubs_accounts_let_the_nodes_key_in_its_own_account(
        self, joined: Joined, network: Network
    ) -> None:
        accounts = network.hub_material.accounts_file.read_text()
        own = account_block(accounts, joined.org)
        assert f'"nkey": "{joined.nkey()}"' in own
        assert '"allowed_connection_types": ["LEAFNODE"]' in own
        assert accounts.count(joined.nkey()) == 1  # in no other account

    async def test_the_credentials_name_the_organisation_the_hub_and_a_future_expiry(
        self, joined: Joined, network: Network
    ) -> None:
        issued = Credentials.model_validate_json(joined.issued.read_bytes())
        assert issued.org_id == joined.org
        assert issued.account == f"ORG_{joined.org}"
        assert issued.nkey == joined.nkey()
        assert issued.hub == network.hub_material.address
        assert issued.hub_leaf_urls == network.hub_material.leaf_urls
        assert issued.expires_at > datetime.now(UTC) + timedelta(days=360)  # the default year
        installed = joined.installed()
        assert (installed.org_id, installed.nkey) == (issued.org_id, issued.nkey)
        ca = (joined.folder / CA_FILE).read_text()
        assert ca == network.hub_material.ca_file.read_text()

    async def test_the_node_would_start_with_what_init_and_join_wrote(self, joined: Joined) -> None:
        written = dict(
            line.removeprefix("RELAIS_").split("=", 1)
            for line in (joined.folder / "node.env").read_text().splitlines()
            if line
        )
        settings = NodeSettings.model_validate(
            {key.lower(): value for key, value in written.items()}
            | {"nats_url": "nats://127.0.0.1:4222", "database_url": "postgresql://x/relais"}
        )  # the operator adds these two
        assert credentials_problem(settings) is None

    async def test_the_new_nodes_nats_server_links_to_the_hub_in_its_own_account(
        self, joined: Joined, network: Network
    ) -> None:
        issued = joined.installed()
        client_port, monitor_port = free_ports(2)
        spec = NatsServerSpec(
            name=joined.org,
            domain=joined.org,
            client_port=client_port,
            monitor_port=monitor_port,
            store_dir=joined.folder / "jetstream",
            hub_leaf_urls=tuple(issued.hub_leaf_urls),
            ca_file=joined.folder / CA_FILE,
            nkey_seed=(joined.folder / NKEY_SEED_FILE).read_text().strip(),
        )
        process = nats_server.process(
            spec, config_dir=joined.folder / "nats", log_dir=joined.folder / "logs"
        )

        async def linked() -> bool:
            return (await leaf_accounts(network)).get(joined.org) == f"ORG_{joined.org}"

        async def unlinked() -> bool:
            return joined.org not in await leaf_accounts(network)

        try:
            await network.supervisor.start(process)
            await eventually(linked, within=20, what=f"{joined.org}'s leaf links to the hub")
        finally:
            with contextlib.suppress(KeyError):
                await network.supervisor.stop(process.name)
        await eventually(unlinked, within=10, what=f"{joined.org}'s leaf is gone once stopped")

    async def test_admitting_the_same_application_again_is_refused(
        self, joined: Joined, secretariat: Secretariat
    ) -> None:
        again = joined.folder / "again.json"
        code, out = await relais(
            "hub", "admit", joined.folder / APPLICATION_FILE, *secretariat.options(), "--out", again
        )
        assert code != 0
        assert "the hub refused" in out
        assert f"{joined.org} is already in the directory" in out
        assert not again.exists()

    async def test_renewing_writes_credentials_with_a_later_expiry_the_node_installs(
        self, joined: Joined, secretariat: Secretariat
    ) -> None:
        before = Credentials.model_validate_json(joined.issued.read_bytes())
        renewed_file = joined.folder / "renewed.json"
        code, out = await relais(
            "hub", "renew", joined.org, *secretariat.options(), "--valid-days", "400",
            "--out", renewed_file,
        )  # fmt: skip
        assert code == 0, out
        assert "credentials renewed until" in out
        renewed = Credentials.model_validate_json(renewed_file.read_bytes())
        assert renewed.expires_at > before.expires_at + timedelta(days=30)
        assert (renewed.org_id, renewed.nkey) == (joined.org, joined.nkey())  # the same key
        code, out = await relais("node", "join", renewed_file, "--dir", joined.folder)
        assert code == 0, out
        assert joined.installed().expires_at == renewed.expires_at

    async def test_credentials_for_another_node_are_not_installed(
        self, joined: Joined, network: Network
    ) -> None:
        installed = (joined.folder / CREDENTIALS_FILE).read_bytes()
        sanads = network.credentials_file(network.plan("sanad"))
        code, out = await relais("node", "join", sanads, "--dir", joined.folder)
        assert code != 0
        assert f"these credentials are not for this node ({joined.org})" in out
        assert (joined.folder / CREDENTIALS_FILE).read_bytes() == installed

    async def test_credentials_from_another_hub_are_not_installed(self, joined: Joined) -> None:
        installed = (joined.folder / CREDENTIALS_FILE).read_bytes()
        elsewhere = joined.installed().model_copy(update={"hub": "other-hub.example:7422"})
        forged = joined.folder / "elsewhere.json"
        forged.write_text(elsewhere.model_dump_json())
        code, out = await relais("node", "join", forged, "--dir", joined.folder)
        assert code != 0
        assert "the credentials come from other-hub.example:7422" in out
        assert (joined.folder / CREDENTIALS_FILE).read_bytes() == installed


async def test_an_organisation_that_leaves_takes_its_streams_and_the_hub_stays_healthy(
    network: Network,
    secretariat: Secretariat,
    running_network: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Its account leaves the hub's configuration, and its streams with it first: nats-server
    calls itself unhealthy while it holds streams for an account it cannot resolve (and the
    hub's nats-server then never passes its readiness check again)."""
    org = a_new_org_id()
    address = network.hub_material.address
    assert (await relais("node", "init", "--org", org, "--hub", address, "--dir", tmp_path))[0] == 0
    code, out = await relais(
        "hub", "admit", tmp_path / APPLICATION_FILE, *secretariat.options(),
        "--out", tmp_path / "creds.json",
    )  # fmt: skip
    assert code == 0, out
    hub = await nats.connect(network.hub.nats_url)
    try:
        share = await hub.jetstream(prefix=account_api(org)).stream_info(f"TO_{org}")
        assert share.config.name == f"TO_{org}"  # what leaving must take away
        async with client(running_network, "hub", "coordinator") as api:
            left = await api.post(
                f"/api/v1/directory/organisations/{org}/membership", json={"action": "leave"}
            )
        assert left.status_code == 200, left.text
        assert f"ORG_{org}" not in network.hub_material.accounts_file.read_text()
        router = await hub.jetstream().stream_info("ROUTER")
        assert f"FROM_{org}" not in [source.name for source in router.config.sources or []]
    finally:
        await hub.close()
    async with httpx.AsyncClient(timeout=3) as http:
        for _ in range(3):  # and it stays so
            health = await http.get(f"http://127.0.0.1:{network.hub.monitor_port}/healthz")
            assert health.status_code == 200, health.text
            await asyncio.sleep(1)
