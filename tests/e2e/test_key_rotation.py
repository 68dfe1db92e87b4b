"""Rotating an organisation's key pairs on real servers (``relais node rotate-keys``): the new
keys go through the hub as the organisation's signed change; what was sealed for the old key
still opens; the next referral is sealed for the new key; the audit chain and its checkpoints,
signed with either key, still verify. After a compromise (``--revoke-old``), an envelope
signed with the revoked key is refused, one signed with the new key is not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.network import Network
from shared.crypto import NodeKeys, key_id
from tests.e2e import forgery
from tests.e2e.conftest import client, network_of_its_own, relais
from tests.e2e.test_audit import checkpoint_now
from tests.e2e.test_referrals import PERSON, reaches, send
from tests.waiting import eventually

Creds = dict[str, Any]


@pytest.fixture(scope="module")
async def two_members() -> AsyncIterator[tuple[Network, Creds]]:
    async with network_of_its_own(("sanad", "amal"), "relais-rotate-") as (net, creds):
        yield net, creds


def _folder(net: Network, node: str) -> Path:
    return net.key_dir(next(p for p in net.plans if p.node_id == node))


async def _amal_keys_at(creds: Creds, node: str) -> list[dict[str, Any]]:
    async with client(creds, node, "admin") as admin:
        record = (await admin.get("/api/v1/directory/organisations/amal")).json()
    return list(record["keys"])


async def _rotate(net: Network, creds: Creds, *options: str) -> dict[str, str]:
    """Run ``relais node rotate-keys`` at amal and wait until the hub has published the new
    keys, amal signs with them and sanad's replica knows them; the new key ids by use."""
    folder = _folder(net, "amal")
    database = creds["nodes"]["amal"]["database_url"]
    code, out = await relais("node", "rotate-keys", "--dir", folder, "--database-url", database,
                             *options)  # fmt: skip
    assert code == 0, out
    assert "New keys made and sent to the hub" in out
    # One line per key (use, id, valid from, valid until): the new ones have no end. Read from
    # the output, not the folder: the node may have taken them up already.
    rows = [line.split() for line in out.splitlines() if line.startswith(("ed25519", "x25519"))]
    new = {use: kid for use, kid, _, until in rows if until == "-"}
    assert set(new) == {"ed25519", "x25519"}, out
    assert all(until != "-" for _, kid, _, until in rows if kid not in new.values())

    async def taken_up() -> bool:
        return key_id(NodeKeys.load_or_create(folder).signing_public) == new["ed25519"]

    async def known_at_sanad() -> bool:
        return new["x25519"] in {k["key_id"] for k in await _amal_keys_at(creds, "sanad")}

    await eventually(taken_up, within=60, what="amal signs with its new key once published")
    await eventually(known_at_sanad, within=60, what="sanad's directory has amal's new keys")
    return new


async def _sealed_for(creds: Creds, referral_id: str) -> str:
    conn = await asyncpg.connect(creds["nodes"]["amal"]["database_url"])
    try:
        header = await conn.fetchval(
            "SELECT header FROM referrals.referrals WHERE referral_id::text = $1", referral_id
        )
    finally:
        await conn.close()
    return str(json.loads(header)["recipient_key_id"])


async def _payload(creds: Creds, referral_id: str) -> dict[str, Any]:
    async with client(creds, "amal", "focal_point") as amal:
        response = await amal.get(f"/api/v1/referrals/{referral_id}/payload")
    assert response.status_code == 200, response.text
    return dict(response.json()["payload"])


async def _at_the_hub(creds: Creds, hub: str, seq: int) -> dict[str, Any] | None:
    async with client(creds, hub, "auditor") as auditor:
        response = await auditor.get("/api/v1/audit/network/checkpoints", params={"org": "amal"})
    return next((c for c in response.json() if c["seq"] >= seq), None)


async def test_a_rotation_keeps_old_referrals_readable_and_seals_the_next_for_the_new_key(
    two_members: tuple[Network, Creds],
) -> None:
    net, creds = two_members
    hub = net.hub.node_id
    old_x25519 = {k["key_id"] for k in await _amal_keys_at(creds, "sanad") if k["use"] == "x25519"}
    before = await send(creds)
    async with client(creds, "amal", "focal_point") as amal:
        await reaches(amal, before, "received", "the referral sealed for the old key lands")
    assert await _sealed_for(creds, before) in old_x25519
    old_seq = await checkpoint_now(creds, "amal")

    async def old_checkpoint_kept() -> bool:
        return await _at_the_hub(creds, hub, old_seq) is not None

    await eventually(old_checkpoint_kept, within=60, what="amal's checkpoint, old key, at hub")

    new = await _rotate(net, creds)

    keys = {k["key_id"]: k for k in await _amal_keys_at(creds, "sanad")}
    assert all(keys[kid]["valid_until"] for kid in old_x25519)  # the overlap's end
    assert keys[new["x25519"]].get("valid_until") is None
    assert (await _payload(creds, before))["given_name"] == PERSON["given_name"]

    after = await send(creds)
    async with client(creds, "amal", "focal_point") as amal:
        await reaches(amal, after, "received", "the referral sealed for the new key lands")
    assert await _sealed_for(creds, after) == new["x25519"]
    assert (await _payload(creds, after))["given_name"] == PERSON["given_name"]

    new_seq = await checkpoint_now(creds, "amal")  # the chain, old checkpoint included, holds

    async def new_checkpoint_kept() -> bool:
        return await _at_the_hub(creds, hub, new_seq) is not None

    await eventually(new_checkpoint_kept, within=60, what="amal's checkpoint, new key, at hub")
    kept = await _at_the_hub(creds, hub, new_seq)
    assert kept is not None and kept["key_id"] == new["ed25519"]


async def _envelope_from_amal(net: Network, creds: Creds, keys: NodeKeys) -> str:
    """An envelope from amal to sanad signed with ``keys``, sent through amal's real outbox;
    its referral id."""
    sanad_key = await forgery.recipient_key(creds, "amal", "sanad")
    header = forgery.header("amal", "sanad", keys, sanad_key)
    return await forgery.send_through_outbox(creds, forgery.seal(header, PERSON, keys, sanad_key))


async def test_after_a_revocation_an_envelope_signed_with_the_revoked_key_is_refused(
    two_members: tuple[Network, Creds],
) -> None:
    net, creds = two_members
    stolen = NodeKeys.load_or_create(_folder(net, "amal"))  # the pair believed stolen
    revoked_at = datetime.now(UTC)
    await _rotate(net, creds, "--revoke-old")
    keys = {k["key_id"]: k for k in await _amal_keys_at(creds, "sanad")}
    ended = datetime.fromisoformat(keys[key_id(stolen.signing_public)]["valid_until"])
    assert revoked_at <= ended <= datetime.now(UTC)  # from the revocation on, not later

    forged = await _envelope_from_amal(net, creds, stolen)
    honest = await _envelope_from_amal(net, creds, NodeKeys.load_or_create(_folder(net, "amal")))
    async with client(creds, "sanad", "admin") as admin:

        async def parked() -> bool:
            letters = (await admin.get("/api/v1/node/dead-letters")).json()
            reasons = " ".join(str(letter["reason"]) for letter in letters)
            return "envelope refused: expired_signing_key" in reasons

        await eventually(parked, within=30, what="sanad refuses the envelope of the revoked key")
    async with client(creds, "sanad", "focal_point") as sanad:
        await reaches(sanad, honest, "received", "the envelope signed with the new key lands")
        assert (await sanad.get(f"/api/v1/referrals/{forged}")).status_code == 404
