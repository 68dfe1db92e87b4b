"""Rotating an organisation's key pairs on real servers (``relais node rotate-keys``): the new
keys go through the hub as the organisation's signed change; what was sealed for the old key
still opens; the next referral is sealed for the new key; the audit chain and its checkpoints,
signed with either key, still verify. After a compromise (``--revoke-old``), an envelope
signed with the revoked key is refused, one signed with the new key is not. The retained data
keys are sealed again for the new key (``relais node reseal``), after which the retired private
keys can be destroyed and old referrals still open; and a node whose directory lags behind a
rotation waits for the new key instead of refusing the envelope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from deploy.network import Network
from shared.crypto import NodeKeys, key_id
from tests.e2e import forgery
from tests.e2e.conftest import client, network_of_its_own, relais
from tests.e2e.test_audit import checkpoint_now
from tests.e2e.test_dead_letters import CSRF, logged_in
from tests.e2e.test_referrals import PERSON, reaches, referral, send, status_at
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


async def _retired_files(net: Network) -> list[str]:
    retired = _folder(net, "amal") / "retired"
    return sorted(p.name for p in retired.iterdir()) if retired.is_dir() else []


async def _keys_cli(creds: Creds, net: Network, command: str) -> tuple[int, str]:
    database = creds["nodes"]["amal"]["database_url"]
    return await relais("node", command, "--dir", _folder(net, "amal"), "--database-url", database)


async def _recorded(creds: Creds, action: str) -> list[dict[str, Any]]:
    """The audit records of ``action`` that amal's referrals service wrote (its outbox)."""
    conn = await asyncpg.connect(creds["nodes"]["amal"]["database_url"])
    try:
        rows = await conn.fetch("SELECT event FROM referrals.outbox ORDER BY seq")
    finally:
        await conn.close()
    events = [json.loads(row["event"]) for row in rows]
    return [e["data"] for e in events if e["data"].get("action") == action]


async def test_a_reseal_lets_the_retired_private_key_be_destroyed_and_old_referrals_still_open(
    two_members: tuple[Network, Creds],
) -> None:
    net, creds = two_members
    old = await send(creds)
    async with client(creds, "amal", "focal_point") as amal:
        await reaches(amal, old, "received", "the referral sealed for the key to retire lands")
    sealed_for = await _sealed_for(creds, old)
    await _rotate(net, creds, "--overlap-days", "0")  # the old keys end now
    assert f"encryption-{sealed_for}.key" in await _retired_files(net)

    code, out = await _keys_cli(creds, net, "forget-retired-keys")
    assert code == 2, out  # a retained data key still needs the retired key
    assert "re-seal them first" in out
    assert f"encryption-{sealed_for}.key" in await _retired_files(net)

    code, out = await _keys_cli(creds, net, "reseal")
    assert code == 0, out
    resealed = int(out.split()[0])
    assert resealed >= 1, out  # this referral, and those of the earlier tests
    assert "; 0 still sealed for an older key." in out, out
    code, again = await _keys_cli(creds, net, "reseal")  # idempotent: nothing left to do
    assert code == 0 and again.startswith("0 data keys sealed again"), again
    audited = await _recorded(creds, "node.data_keys_resealed")
    assert sum(1 for _ in audited) >= 1 and all(r["outcome"] == "ok" for r in audited)

    code, out = await _keys_cli(creds, net, "forget-retired-keys")
    assert code == 0, out
    assert "retired private keys destroyed" in out
    files = await _retired_files(net)
    assert not [f for f in files if f.endswith(".key")], files  # no private key left
    assert any(f.startswith("signing-") and f.endswith(".pub") for f in files), files
    assert await _recorded(creds, "node.retired_keys_forgotten")

    # What was sealed for the destroyed key still opens, through the re-sealed data key.
    assert (await _payload(creds, old))["given_name"] == PERSON["given_name"]
    async with client(creds, "amal", "focal_point") as amal:
        inbox = (await amal.get("/api/v1/referrals", params={"box": "inbox"})).json()["items"]
    for item in inbox:  # every referral of the earlier tests too, each sealed for an old key
        assert (await _payload(creds, item["referral_id"]))["given_name"] == PERSON["given_name"]


LEGAL_AID = {"given_name": "Awa", "family_name": "Diallo", "need_summary": "Recours en cours."}


async def test_an_envelope_signed_with_a_brand_new_key_waits_for_a_lagging_directory(
    two_members: tuple[Network, Creds],
) -> None:
    """Right after amal's rotation, sanad's copy of the directory lags (its consumer held
    back): amal's envelope signed with the new key is not refused as permanent, it waits, and
    lands once sanad's directory has caught up."""
    net, creds = two_members
    folder = _folder(net, "amal")
    nc = await nats.connect(creds["nodes"]["sanad"]["nats_url"])
    js = nc.jetstream()
    try:
        await js.pause_consumer("INBOX", "directory", "2100-01-01T00:00:00Z")
        database = creds["nodes"]["amal"]["database_url"]
        code, out = await relais("node", "rotate-keys", "--dir", folder, "--database-url", database)
        assert code == 0, out
        (new_signing,) = [
            line.split()[1] for line in out.splitlines()
            if line.startswith("ed25519") and line.split()[3] == "-"
        ]  # fmt: skip

        async def taken_up() -> bool:
            return key_id(NodeKeys.load_or_create(folder).signing_public) == new_signing

        await eventually(taken_up, within=60, what="amal signs with its new key once published")
        assert new_signing not in {k["key_id"] for k in await _amal_keys_at(creds, "sanad")}

        async with client(creds, "amal", "caseworker") as amal:
            sent = await amal.post(
                "/api/v1/referrals",
                json=referral(to_org="sanad", category="legal_aid", payload=LEGAL_AID),
            )
        assert sent.status_code == 201, sent.text
        referral_id = sent.json()["referral_id"]

        async def tried_and_waiting() -> bool:
            info = await js.consumer_info("INBOX", "referrals")
            return bool(info.num_redelivered) or bool(info.num_ack_pending)

        await eventually(tried_and_waiting, within=60, what="sanad tried the envelope and waits")
        async with client(creds, "sanad", "focal_point") as sanad:
            assert (await sanad.get(f"/api/v1/referrals/{referral_id}")).status_code == 404
        async with client(creds, "sanad", "admin") as admin:
            letters = (await admin.get("/api/v1/node/dead-letters")).json()
        assert not any("unknown_signing_key" in str(letter["reason"]) for letter in letters)

        await js.resume_consumer("INBOX", "directory")  # the directory catches up
        async with client(creds, "sanad", "focal_point") as sanad:

            async def landed() -> bool:
                return await status_at(sanad, referral_id) == "received"

            await eventually(landed, within=120, what="the envelope lands once sanad catches up")
    finally:
        await js.resume_consumer("INBOX", "directory")
        await nc.close()

    # The old keys overlap the new ones for a week: they cannot be destroyed yet.
    code, out = await _keys_cli(creds, net, "reseal")
    assert code == 0, out
    code, out = await _keys_cli(creds, net, "forget-retired-keys")
    assert code == 2 and "still publishes key" in out, out


def _row_of(page: str, kid: str) -> str:
    return page.split(f'id="key-{kid}"')[1].split("</tr>")[0]


async def _directory_audit(creds: Creds, action: str, node: str = "amal") -> list[dict[str, Any]]:
    conn = await asyncpg.connect(creds["nodes"][node]["database_url"])
    try:
        rows = await conn.fetch("SELECT event FROM directory.outbox ORDER BY seq")
    finally:
        await conn.close()
    events = [json.loads(row["event"]) for row in rows]
    return [e["data"] for e in events if e["data"].get("action") == action]


async def test_the_administrator_rotates_reseals_and_revokes_from_the_keys_page(
    two_members: tuple[Network, Creds],
) -> None:
    net, creds = two_members
    folder = _folder(net, "amal")
    kept = await send(creds)  # a referral amal keeps, sealed for the key the page will retire
    async with client(creds, "amal", "focal_point") as amal:
        await reaches(amal, kept, "received", "the referral sealed for the current key lands")
    before = NodeKeys.load_or_create(folder)
    old_signing, old_encryption = key_id(before.signing_public), key_id(before.encryption_public)
    admin = await logged_in(creds, "amal", "admin")
    focal_point = await logged_in(creds, "amal", "focal_point")
    english = {"Accept-Language": "en"}
    try:
        assert (await focal_point.get("/admin/keys")).status_code == 403
        async with client(creds, "amal", "focal_point") as api:
            assert (await api.get("/api/v1/directory/keys")).status_code == 403
            assert (await api.post("/api/v1/referrals/keys/reseal")).status_code == 403

        page = await admin.get("/admin/keys", headers=english)
        assert page.status_code == 200, page.text
        assert "Keys of this organisation" in page.text
        for kid in (old_signing, old_encryption):
            assert 'data-state="current"' in _row_of(page.text, kid)
        assert "without end" in _row_of(page.text, old_encryption)
        arabic = await admin.get("/admin/keys", headers={"Accept-Language": "ar"})
        assert "مفاتيح هذه المنظمة" in arabic.text

        refused = await admin.post("/admin/keys/rotate")  # no CSRF token: not from this page
        assert refused.status_code == 403
        assert key_id(NodeKeys.load_or_create(folder).signing_public) == old_signing
        rotated = await admin.post("/admin/keys/rotate", data={"csrf_token": _csrf(page)})
        assert rotated.status_code == 303
        assert rotated.headers["location"] == "/admin/keys?done=rotated"

        async def taken_up() -> bool:
            return key_id(NodeKeys.load_or_create(folder).signing_public) != old_signing

        await eventually(taken_up, within=60, what="amal signs with the keys made on the page")
        page = await admin.get("/admin/keys", headers=english)
        assert 'data-state="retired"' in _row_of(page.text, old_encryption)
        assert "without end" not in _row_of(page.text, old_encryption)  # the week's overlap
        assert [r["actor"] for r in await _directory_audit(creds, "organisation.keys_rotated")][
            -1
        ] == "user:admin"

        # The referrals amal keeps are sealed for the key just retired: re-seal them.
        assert "data keys are still sealed for an older key" in page.text
        resealed = await admin.post("/admin/keys/reseal", data={"csrf_token": _csrf(page)})
        assert resealed.status_code == 303
        page = await admin.get("/admin/keys?done=resealed", headers=english)
        assert "Every retained data key is sealed for the current key." in page.text
        async with client(creds, "amal", "admin") as api:
            assert (await api.get("/api/v1/referrals/keys/reseal")).json()["left"] == 0

        # Revoking needs the organisation's identifier typed: else nothing happens.
        current = NodeKeys.load_or_create(folder)
        wrong = await admin.post(
            "/admin/keys/revoke",
            data={"csrf_token": _csrf(page), "confirm": "yes"},
            headers=english,
        )
        assert wrong.status_code == 422
        assert "Type the organisation&#39;s identifier, amal, to confirm." in wrong.text
        assert not list(folder.glob("*.new"))  # no new pair made
        revoked_at = datetime.now(UTC)
        revoked = await admin.post(
            "/admin/keys/revoke", data={"csrf_token": _csrf(page), "confirm": "amal"}
        )
        assert revoked.status_code == 303
        assert revoked.headers["location"] == "/admin/keys?done=revoked"

        async def replaced() -> bool:
            return NodeKeys.load_or_create(folder).signing_public != current.signing_public

        await eventually(replaced, within=60, what="amal signs with the keys after revocation")
        keys = {k["key_id"]: k for k in await _amal_keys_at(creds, "amal")}
        ended = datetime.fromisoformat(keys[key_id(current.signing_public)]["valid_until"])
        assert revoked_at <= ended <= datetime.now(UTC)
        assert (await _payload(creds, kept))["given_name"] == PERSON["given_name"]
    finally:
        await admin.aclose()
        await focal_point.aclose()


def _csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_the_administrator_destroys_the_retired_private_keys_from_the_keys_page(
    two_members: tuple[Network, Creds],
) -> None:
    """What ``relais node forget-retired-keys`` does, from the page: offered only once nothing
    needs the keys, behind the organisation's identifier typed, audited as the admin's act;
    what was sealed for them still opens."""
    net, creds = two_members
    kept = await send(creds)  # sealed for the key about to retire
    async with client(creds, "amal", "focal_point") as amal:
        await reaches(amal, kept, "received", "the referral sealed for the current key lands")
    old = key_id(NodeKeys.load_or_create(_folder(net, "amal")).encryption_public)
    await _rotate(net, creds, "--overlap-days", "0")  # the old keys end now
    assert f"encryption-{old}.key" in await _retired_files(net)
    admin = await logged_in(creds, "amal", "admin")
    english = {"Accept-Language": "en"}
    try:
        async with client(creds, "amal", "focal_point") as api:
            assert (await api.post("/api/v1/referrals/keys/retired/forget")).status_code == 403

        # A retained data key is still sealed for the retired key: not offered, and refused.
        page = await admin.get("/admin/keys", headers=english)
        assert "Destroy the retired private keys" in page.text
        assert "Not yet: re-seal the retained data first (above)." in page.text
        assert 'action="/admin/keys/forget"' not in page.text
        async with client(creds, "amal", "admin") as api:
            refused = await api.post("/api/v1/referrals/keys/retired/forget")
        assert refused.status_code == 409, refused.text
        assert "re-seal them first" in refused.text
        assert f"encryption-{old}.key" in await _retired_files(net)

        resealed = await admin.post("/admin/keys/reseal", data={"csrf_token": _csrf(page)})
        assert resealed.status_code == 303
        page = await admin.get("/admin/keys", headers=english)
        assert 'action="/admin/keys/forget"' in page.text
        french = await admin.get("/admin/keys", headers={"Accept-Language": "fr"})
        assert "Détruire les clés privées retirées" in french.text

        # The organisation's identifier must be typed: else nothing is destroyed.
        wrong = await admin.post(
            "/admin/keys/forget",
            data={"csrf_token": _csrf(page), "confirm": "yes"},
            headers=english,
        )
        assert wrong.status_code == 422
        assert "Type the organisation&#39;s identifier, amal, to confirm." in wrong.text
        assert f"encryption-{old}.key" in await _retired_files(net)
        assert (await admin.post("/admin/keys/forget", data={"confirm": "amal"})).status_code == 403

        destroyed = await admin.post(
            "/admin/keys/forget", data={"csrf_token": _csrf(page), "confirm": "amal"}
        )
        assert destroyed.status_code == 303
        assert destroyed.headers["location"] == "/admin/keys?done=forgotten"
        page = await admin.get("/admin/keys?done=forgotten", headers=english)
        assert "The retired private keys are destroyed." in page.text
        assert 'data-state="forgotten"' in _row_of(page.text, old)
        assert "This node keeps no retired private key." in page.text
        files = await _retired_files(net)
        assert not [f for f in files if f.endswith(".key")], files
        (record, *_) = reversed(await _recorded(creds, "node.retired_keys_forgotten"))
        assert record["actor"] == "user:admin"
        assert record["object"] == "organisation:amal"
        # What was sealed for the destroyed key still opens, through its re-sealed data key.
        assert (await _payload(creds, kept))["given_name"] == PERSON["given_name"]
    finally:
        await admin.aclose()


async def test_the_secretariat_rotates_the_hubs_own_keys_and_every_node_learns_them(
    two_members: tuple[Network, Creds],
) -> None:
    """The hub's keys sign its audit checkpoints; after a theft they must be replaceable too.
    Its own record is published at the hub: no request waits, the hub signs with the new
    pair at once and every node's directory learns it."""
    net, creds = two_members
    folder = _folder(net, "hub")
    org = net.hub.org
    old = key_id(NodeKeys.load_or_create(folder).signing_public)
    async with client(creds, "hub", "admin") as admin:
        rotated = await admin.post("/api/v1/directory/keys/rotation", json={})
        assert rotated.status_code == 202, rotated.text
        shown = {k["key_id"]: k for k in rotated.json()["keys"]}
        assert not rotated.json()["rotation_waiting"]
        new = key_id(NodeKeys.load_or_create(folder).signing_public)
        assert new != old  # taken up at once
        assert (shown[new]["state"], shown[old]["state"]) == ("current", "retired")
        assert shown[old]["valid_until"] is not None and shown[new]["valid_until"] is None

    async def known_at(node: str) -> bool:
        async with client(creds, node, "admin") as reader:
            record = (await reader.get(f"/api/v1/directory/organisations/{org}")).json()
        return new in {k["key_id"] for k in record["keys"]}

    for node in ("sanad", "amal"):
        await eventually(partial(known_at, node), within=30, what=f"{node} knows the new key")

    await checkpoint_now(creds, "hub")
    async with client(creds, "hub", "admin") as admin:
        checkpoints = (await admin.get("/api/v1/audit/checkpoints")).json()
        assert checkpoints[-1]["key_id"] == new
        assert (await admin.get("/api/v1/audit/verification")).json()["ok"]
    audited = await _directory_audit(creds, "organisation.keys_rotated", node="hub")
    assert audited and audited[-1]["actor"] == "user:admin"

    # From the hub's keys page, which says that nothing waits there.
    page_admin = await logged_in(creds, "hub", "admin")
    try:
        page = await page_admin.get("/admin/keys", headers={"Accept-Language": "en"})
        assert page.status_code == 200, page.text
        assert "publishes them to every node at once" in page.text
        assert 'data-state="current"' in _row_of(page.text, new)
        rotated_again = await page_admin.post(
            "/admin/keys/rotate", data={"csrf_token": _csrf(page)}
        )
        assert rotated_again.headers["location"] == "/admin/keys?done=rotated"
        page = await page_admin.get("/admin/keys?done=rotated", headers={"Accept-Language": "fr"})
        assert "le hub signe avec elles dès maintenant" in page.text
        assert 'data-state="retired"' in _row_of(page.text, new)
    finally:
        await page_admin.aclose()
