"""Replacing a node's NATS key (its seed believed stolen): the node makes a new key and a
request signed by its organisation's key; the secretariat renews the credentials with it; the
old key's link is cut at once and stays refused; the node installs the new credentials and
links again. A request signed by anyone else is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from deploy.cli import app
from deploy.network import Network
from shared.crypto import NodeKeys
from shared.membership.joining import load_or_create_nkey, make_key_change, nkey_public
from tests.e2e.conftest import client, user
from tests.e2e.test_federation_flows import probe_answered
from tests.e2e.test_isolation import _leaf_accounts
from tests.waiting import eventually


def relais(*arguments: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in arguments])
    assert result.exit_code == 0, result.output
    return str(result.output)


async def test_a_new_nats_key_replaces_the_old_one_which_is_refused_from_then_on(
    network: Network, running_network: dict[str, Any], tmp_path: Path
) -> None:
    amal = network.plan("amal")
    folder = network.key_dir(amal)
    old_seed = (folder / "nats.nkey").read_text()
    token = user(running_network, "hub", "coordinator")["token"]
    relais("node", "rekey", "--dir", folder)
    change = folder / "nkey-change.json"
    assert json.loads(change.read_text())["org_id"] == "amal"
    await probe_answered(running_network, "amal", "sanad", within=60)  # the old key still works

    credentials = tmp_path / "amal-credentials.json"
    hub_dir = network.hub_material.folder
    hub_url = running_network["nodes"]["hub"]["url"]
    relais("hub", "renew", "amal", "--hub-url", hub_url, "--token", token, "--dir", hub_dir,
           "--key-change", change, "--out", credentials)  # fmt: skip
    # The answer comes once the old key's link is cut; its retries are refused.
    assert "ORG_amal" not in await _leaf_accounts(network)
    await asyncio.sleep(2)
    assert "ORG_amal" not in await _leaf_accounts(network)

    relais("node", "join", credentials, "--dir", folder)
    assert (folder / "nats.nkey").read_text() != old_seed
    assert not (folder / "nats.nkey.new").exists()
    await network.supervisor.stop("nats-amal")  # its configuration now carries the new seed
    await network.supervisor.start(network.nats_process(amal))

    async def linked() -> bool:
        return "ORG_amal" in await _leaf_accounts(network)

    await eventually(linked, within=20, what="amal links again with its new key")
    await probe_answered(running_network, "sanad", "amal", within=60)


async def test_a_key_change_not_signed_by_the_organisation_is_refused(
    network: Network, running_network: dict[str, Any], tmp_path: Path
) -> None:
    stranger = NodeKeys.load_or_create(tmp_path)
    forged = make_key_change(stranger, "amal", nkey_public(load_or_create_nkey(tmp_path)))
    body = {"valid_days": 30, "key_change": forged.model_dump(mode="json")}
    async with client(running_network, "hub", "coordinator") as hub:
        response = await hub.post("/api/v1/directory/organisations/amal/credentials", json=body)
    assert response.status_code == 403, response.text
    assert response.json()["field"] == "key_change.key_id"
    assert "ORG_amal" in await _leaf_accounts(network)  # nothing changed
