"""The documents of a referral, on real servers: a 10 MB file attached while the hub is down
arrives once after it returns, byte-identical and verified; a chunk altered on the way parks
the file as refused and tells the writer's node why; consent withdrawn erases the files on
both nodes; bad files are refused naming why, with nothing kept; the NATS commands."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import nats

from deploy.network import Network
from services.referrals import file_seal
from shared import outbox
from shared.contracts.referrals import ReferralAttached, ReferralChunk
from shared.crypto import NodeKeys, key_id
from shared.events import make_event, new_event_id
from tests.e2e.conftest import client
from tests.e2e.test_referral_safety import _audit_actions, _system_token
from tests.e2e.test_referrals import reaches, send
from tests.e2e.test_store_and_forward import AFTER_HUB_RESTART
from tests.waiting import eventually

Creds = dict[str, Any]
TEN_MB = 10 * 1024 * 1024 - 4096  # just under the default limit of 10 MiB


def pdf(size: int) -> bytes:
    return b"%PDF-1.7\n" + os.urandom(size - 9)


async def attach(
    node: httpx.AsyncClient,
    referral_id: str,
    content: bytes,
    name: str,
    content_type: str | None = None,
) -> httpx.Response:
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    if content_type:
        headers["Content-Type"] = content_type
    return await node.post(
        f"/api/v1/referrals/{referral_id}/attachments",
        content=content,
        headers=headers,
        timeout=120,
    )


async def files_at(node: httpx.AsyncClient, referral_id: str) -> list[dict[str, Any]]:
    response = await node.get(f"/api/v1/referrals/{referral_id}/attachments")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["attachments"]
    return found


async def state_of(node: httpx.AsyncClient, referral_id: str, attachment_id: str) -> str | None:
    for file in await files_at(node, referral_id):
        if file["attachment_id"] == attachment_id:
            return str(file["state"])
    return None


async def becomes(
    node: httpx.AsyncClient, referral_id: str, attachment_id: str, state: str, within: float
) -> None:
    async def there() -> bool:
        return await state_of(node, referral_id, attachment_id) == state

    await eventually(there, within=within, what=f"the file is {state}")


async def download(node: httpx.AsyncClient, referral_id: str, attachment_id: str) -> httpx.Response:
    return await node.get(
        f"/api/v1/referrals/{referral_id}/attachments/{attachment_id}/content", timeout=60
    )


async def test_a_10_mb_file_sent_while_the_hub_is_down_arrives_once_byte_identical(
    running_network: Creds, network: Network
) -> None:
    referral_id = await send(running_network)
    content = pdf(TEN_MB)
    name = "certificat médical.pdf"
    async with client(running_network, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
    hub = network.hub
    await network.supervisor.stop(f"nats-{hub.node_id}")
    try:
        async with client(running_network, "sanad", "caseworker") as sanad:
            response = await attach(sanad, referral_id, content, name, "application/pdf")
            assert response.status_code == 201, response.text
            sent = response.json()
            assert (sent["state"], sent["content_type"], sent["size"]) == (
                "on_its_way",
                "application/pdf",
                len(content),
            )
            assert sent["sha256"] == hashlib.sha256(content).hexdigest()
            # The writer's node offers its own copy at once, whatever the network's state.
            own = await download(sanad, referral_id, sent["attachment_id"])
            assert own.status_code == 200 and own.content == content
    finally:
        await network.supervisor.start(network.nats_process(hub))
    attachment_id = sent["attachment_id"]
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await becomes(amal, referral_id, attachment_id, "arrived", within=AFTER_HUB_RESTART + 60)
        [there] = await files_at(amal, referral_id)  # once
        assert (there["filename"], there["by_org"], there["mine"]) == (name, "sanad", False)
        got = await download(amal, referral_id, attachment_id)
        assert got.status_code == 200
        assert got.content == content  # byte-identical
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["x-content-type-options"] == "nosniff"
        disposition = got.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert quote(name, safe="") in disposition
        # The writer's node learns the file was verified there.
        await becomes(sanad, referral_id, attachment_id, "arrived", within=AFTER_HUB_RESTART)

        async def focal_point_told() -> bool:
            items = (await amal.get("/api/v1/notifications/feed")).json()["items"]
            return any(
                i["kind"] == "inbox_file" and i["facts"].get("referral_id") == referral_id
                for i in items
            )

        await eventually(focal_point_told, within=30, what="amal's focal point is told")
        items = (await amal.get("/api/v1/notifications/feed")).json()["items"]
        assert "certificat" not in json.dumps(items)  # that a file came, never its name
    amal_db = running_network["nodes"]["amal"]["database_url"]
    actions = await _audit_actions(amal_db, referral_id)
    assert actions.count(("referral.attachment_received", "ok")) == 1
    assert ("referral.attachment_read", "ok") in actions
    conn = await asyncpg.connect(amal_db)
    try:
        chunks = await conn.fetchval(
            "SELECT count(*) FROM referrals.attachment_chunks WHERE attachment_id = $1",
            attachment_id,
        )
    finally:
        await conn.close()
    assert chunks == 40  # 10 MB in chunks of 256 KiB, each kept once


async def _forge_tampered(creds: Creds, network: Network, referral_id: str) -> str:
    """A file sanad's node keeps as sent, whose second chunk is altered between sanad's store
    and the wire (written to sanad's real outbox, through the real federation)."""
    plan = next(p for p in network.plans if p.node_id == "sanad")
    keys = NodeKeys.load_or_create(network.key_dir(plan))
    async with client(creds, "sanad", "caseworker") as sanad:
        amal = (await sanad.get("/api/v1/directory/organisations/amal")).json()
    amal_key = next(k for k in amal["keys"] if k["use"] == "x25519")
    content = b"Attestation\n" * 60_000  # three chunks of text
    attachment_id = new_event_id()
    sealed = file_seal.seal_file(content, attachment_id=attachment_id)
    where = {"referral_id": referral_id, "attachment_id": attachment_id, "by_org": "sanad"}
    _, digest_signature = keys.sign(
        file_seal.digest_document(**where, sha256=sealed.sha256, size=len(content))
    )
    meta = file_seal.seal_meta(
        sealed.key,
        {
            "filename": "attestation.txt",
            "content_type": "text/plain",
            "sha256": sealed.sha256,
            "digest_signature": digest_signature,
        },
        **where,
    )
    now = datetime.now(UTC)
    draft = ReferralAttached(
        **where,
        by_role="caseworker",
        at=now,
        size=len(content),
        chunks=len(sealed.chunks),
        stream_header=base64.b64encode(sealed.header).decode(),
        sealed_meta=meta,
        sealed_key=file_seal.seal_key(sealed.key, amal_key["public_key"]),
        key_id=amal_key["key_id"],
        sender_key_id=key_id(keys.signing_public),
        signature="",
    )
    _, signature = keys.sign(draft.signed_part())
    announced = draft.model_copy(update={"signature": signature})
    second = sealed.chunks[1]
    altered = second[:100] + bytes([second[100] ^ 0xFF]) + second[101:]
    chunks = [sealed.chunks[0], altered, *sealed.chunks[2:]]
    conn = await asyncpg.connect(creds["nodes"]["sanad"]["database_url"])
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        async with conn.transaction():
            await conn.execute(
                """
                INSERT INTO referrals.attachments (attachment_id, referral_id, by_org, by_role,
                    at, size, chunks, stream_header, sealed_meta, sealed_key, key_id,
                    sender_key_id, signature, state)
                VALUES ($1, $2, 'sanad', 'caseworker', $3, $4, $5, $6, $7, $8, $9, $10, $11,
                        'on_its_way')
                """,
                attachment_id,
                referral_id,
                now,
                len(content),
                len(chunks),
                sealed.header,
                meta,
                file_seal.seal_key(sealed.key, base64.b64encode(keys.encryption_public).decode()),
                key_id(keys.encryption_public),
                announced.sender_key_id,
                signature,
            )
            events: list[tuple[str, Any]] = [("attached", announced)]
            events += [
                (
                    "chunk",
                    ReferralChunk(
                        referral_id=referral_id,
                        attachment_id=attachment_id,
                        index=i,
                        sealed=base64.b64encode(c).decode(),
                    ),
                )
                for i, c in enumerate(chunks)
            ]
            for name, payload in events:
                event = make_event(payload, source="relais://sanad/referrals", subject=referral_id)
                await outbox.add(conn, "referrals", f"relais.net.sanad.amal.referral.{name}", event)
    finally:
        await conn.close()
    return attachment_id


async def test_a_tampered_chunk_parks_the_file_as_refused_and_the_writer_is_told(
    running_network: Creds, network: Network
) -> None:
    referral_id = await send(running_network)
    async with client(running_network, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
    attachment_id = await _forge_tampered(running_network, network, referral_id)
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await becomes(amal, referral_id, attachment_id, "refused", within=60)
        [there] = await files_at(amal, referral_id)
        assert there["refused_reason"] == "tampered_chunk"
        assert there["filename"] is None  # nothing of it is offered
        assert (await download(amal, referral_id, attachment_id)).status_code == 409
        await becomes(sanad, referral_id, attachment_id, "refused", within=60)
        [mine] = await files_at(sanad, referral_id)
        assert mine["refused_reason"] == "tampered_chunk"  # told why
    conn = await asyncpg.connect(running_network["nodes"]["amal"]["database_url"])
    try:
        kept = await conn.fetchval(
            "SELECT count(*) FROM referrals.attachment_chunks WHERE attachment_id = $1",
            attachment_id,
        )
    finally:
        await conn.close()
    assert kept == 0  # never a partial file
    actions = await _audit_actions(running_network["nodes"]["amal"]["database_url"], referral_id)
    assert ("referral.attachment_refused", "failed") in actions


async def test_consent_withdrawn_erases_the_files_on_both_nodes(running_network: Creds) -> None:
    referral_id = await send(running_network)
    content = "Récépissé de demande d'asile\n".encode()
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
        response = await attach(amal, referral_id, content, "recepisse.txt")
        assert response.status_code == 201, response.text
        theirs = response.json()["attachment_id"]
        response = await attach(sanad, referral_id, content, "copie.txt", "text/plain")
        assert response.status_code == 201, response.text
        mine = response.json()["attachment_id"]
        await becomes(sanad, referral_id, theirs, "arrived", within=60)
        await becomes(amal, referral_id, mine, "arrived", within=60)
        revoked = await sanad.post(f"/api/v1/referrals/{referral_id}/revoke-consent")
        assert revoked.status_code in (200, 204), revoked.text
        for file in (theirs, mine):
            await becomes(amal, referral_id, file, "erased", within=60)
            await becomes(sanad, referral_id, file, "erased", within=30)
            for node in (sanad, amal):
                assert (await download(node, referral_id, file)).status_code == 409
        assert all(f["filename"] is None for f in await files_at(amal, referral_id))
        refused = await attach(sanad, referral_id, content, "encore.txt")
        assert refused.status_code == 409
    for name in ("sanad", "amal"):
        conn = await asyncpg.connect(running_network["nodes"][name]["database_url"])
        try:
            left = await conn.fetchval(
                "SELECT count(*) FROM referrals.attachment_chunks WHERE referral_id = $1",
                referral_id,
            )
            keys = await conn.fetchval(
                "SELECT count(*) FROM referrals.attachments"
                " WHERE referral_id = $1 AND sealed_key IS NOT NULL",
                referral_id,
            )
        finally:
            await conn.close()
        assert (left, keys) == (0, 0), name


async def test_bad_files_are_refused_naming_why_and_nothing_is_kept(
    running_network: Creds,
) -> None:
    referral_id = await send(running_network)
    outsider = await _system_token(running_network, "hub", "caseworker")
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
        client(running_network, "sanad", "admin") as admin,
    ):
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
        for content, name, declared, why in (
            (b"", "vide.pdf", None, "empty"),
            (pdf(10 * 1024 * 1024 + 1), "gros.pdf", None, "too large"),
            (b"MZ\x90\x00\x03\x00", "programme.pdf", None, "not allowed"),
            (b"PK\x03\x04zip", "archive.docx", None, "not allowed"),
            (pdf(1000), "photo.png", "image/png", "does not match its declared type"),
            (b"%PDF-1.4", "", None, "needs a name"),
        ):
            response = await attach(sanad, referral_id, content, name, declared)
            assert response.status_code == 422, (why, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert why in response.text
        far_too_large = await attach(sanad, referral_id, pdf(11 * 1024 * 1024), "x.pdf")
        assert far_too_large.status_code == 413
        assert await files_at(sanad, referral_id) == []
        path = f"/api/v1/referrals/{referral_id}/attachments"
        third = httpx.AsyncClient(
            base_url=running_network["nodes"]["hub"]["url"],
            headers={"Authorization": f"Bearer {outsider}"},
            timeout=10,
        )
        async with third:
            assert (await third.get(path)).status_code == 404
            assert (await attach(third, referral_id, b"%PDF-1.4", "a.pdf")).status_code == 404
        assert (await admin.get(path)).status_code == 403
        unknown = await download(sanad, referral_id, new_event_id())
        assert unknown.status_code == 404
        # A real one still crosses, alone.
        good = await attach(sanad, referral_id, b"%PDF-1.4 seul", "seul.pdf")
        assert good.status_code == 201
        await becomes(amal, referral_id, good.json()["attachment_id"], "arrived", within=60)
        assert [f["filename"] for f in await files_at(amal, referral_id)] == ["seul.pdf"]


async def test_a_member_system_attaches_and_downloads_through_its_nodes_nats(
    running_network: Creds,
) -> None:
    referral_id = await send(running_network)
    token = await _system_token(running_network, "amal", "focal_point")
    sanad_token = await _system_token(running_network, "sanad", "caseworker")
    async with client(running_network, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
    content = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)

    async def ask(node: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        nc = await nats.connect(running_network["nodes"][node]["nats_url"])
        try:
            reply = await nc.request(
                f"relais.cmd.referrals.{action}", json.dumps(body).encode(), timeout=10
            )
        finally:
            await nc.close()
        answer: dict[str, Any] = json.loads(reply.data)
        return answer

    one = {"token": token, "referral_id": referral_id}
    sent = await ask(
        "amal",
        "attach",
        one
        | {
            "filename": "scan.png",
            "content_type": "image/png",
            "content": base64.b64encode(content).decode(),
        },
    )
    attachment_id = sent["result"]["attachment_id"]
    assert sent["result"]["content_type"] == "image/png"
    not_png = base64.b64encode(b"not an image").decode()
    wrong = await ask(
        "amal",
        "attach",
        one | {"filename": "x.png", "content_type": "image/png", "content": not_png},
    )
    assert wrong["error"]["status"] == 422 and wrong["error"]["field"] == "file", wrong
    listed = (await ask("amal", "attachments", one))["result"]
    assert [f["filename"] for f in listed["attachments"]] == ["scan.png"]
    sanad_one = {"token": sanad_token, "referral_id": referral_id}

    async def arrived() -> bool:
        found = (await ask("sanad", "attachments", sanad_one))["result"]["attachments"]
        return [f["state"] for f in found] == ["arrived"]

    await eventually(arrived, within=60, what="the file reaches sanad")
    got = (await ask("sanad", "attachment", sanad_one | {"attachment_id": attachment_id}))["result"]
    assert base64.b64decode(got["content"]) == content
    missing = await ask("sanad", "attachment", sanad_one | {"attachment_id": str(uuid.uuid4())})
    assert missing["error"]["status"] == 422  # not a UUIDv7
