"""What protects the person referred, on real servers: tampered envelopes are refused and
parked, no plaintext is stored or logged anywhere on the network, and the deadlines clock
reminds, escalates to the secretariat (metadata only) and expires. Also the NATS ingress."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig, DeliverPolicy

from deploy.network import Network
from services.referrals import envelope
from shared.contracts.referrals import ReferralOffered
from shared.crypto import NodeKeys
from tests.e2e import forgery
from tests.e2e.conftest import client
from tests.e2e.test_referrals import PERSON, reaches, referral, send
from tests.waiting import eventually

Creds = dict[str, Any]


# -- tampering -------------------------------------------------------------------------------


async def _forge(creds: Creds, network: Network, tamper: str) -> str:
    """Send, through sanad's real outbox and the real federation, an envelope altered in the
    way ``tamper`` says; returns its referral id."""
    plan = next(p for p in network.plans if p.node_id == "sanad")
    keys = NodeKeys.load_or_create(network.key_dir(plan))
    amal_key = await forgery.recipient_key(creds, "sanad", "amal")
    header = forgery.header("sanad", "amal", keys, amal_key)
    honest = forgery.seal(header, PERSON, keys, amal_key)
    altered = honest.sealed.model_copy(update={"ciphertext": envelope.b64(b"\x00" * 64)})
    if tamper == "ciphertext":  # changed on the way: the signature no longer holds
        offer = honest.model_copy(update={"sealed": altered})
    elif tamper == "re-signed":  # even signed by the real sender, it does not decrypt
        _, signature = keys.sign(
            {"header": header.model_dump(mode="json"), "sealed": altered.model_dump(mode="json")}
        )
        offer = ReferralOffered(header=header, sealed=altered, signature=signature)
    else:  # signed by a key that is not sanad's
        impostor = NodeKeys.load_or_create(network.root / f"impostor-{uuid.uuid4().hex[:6]}")
        offer = forgery.seal(header, PERSON, impostor, amal_key)
    return await forgery.send_through_outbox(creds, offer)


async def _audit_actions(database_url: str, referral_id: str) -> list[tuple[str, str]]:
    """The audit records a node's referrals service wrote about one referral."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT event->'data'->>'action' AS action, event->'data'->>'outcome' AS outcome"
            " FROM referrals.outbox WHERE event->>'type' = 'relais.audit.recorded.v1'"
            " AND event->'data'->>'object' = $1 ORDER BY seq",
            f"referral:{referral_id}",
        )
    finally:
        await conn.close()
    return [(r["action"], r["outcome"]) for r in rows]


async def test_tampered_envelopes_are_refused_parked_audited_and_reported(
    running_network: Creds, network: Network
) -> None:
    forged = {
        reason: await _forge(running_network, network, tamper)
        for tamper, reason in (
            ("ciphertext", "bad_signature"),
            ("re-signed", "undecryptable"),
            ("impostor", "bad_signature"),
        )
    }
    async with client(running_network, "amal", "admin") as admin:

        async def parked() -> bool:
            # Two of the three are refused for a bad signature: each is waited for (``forged``
            # keeps the last one's id), so that the last sent is parked too before the checks.
            letters = (await admin.get("/api/v1/node/dead-letters")).json()
            reasons = [str(letter["reason"]) for letter in letters]
            return all(
                sum(f"envelope refused: {reason}" in r for r in reasons) >= wanted
                for reason, wanted in (("bad_signature", 2), ("undecryptable", 1))
            )

        await eventually(parked, within=30, what="amal parks every forged envelope")
    async with client(running_network, "amal", "focal_point") as amal:
        for referral_id in forged.values():
            assert (await amal.get(f"/api/v1/referrals/{referral_id}")).status_code == 404
    amal_db = running_network["nodes"]["amal"]["database_url"]
    sanad_db = running_network["nodes"]["sanad"]["database_url"]
    for referral_id in forged.values():
        assert await _audit_actions(amal_db, referral_id) == [("referral.refused", "failed")]

        async def told(referral_id: str = referral_id) -> bool:
            actions = await _audit_actions(sanad_db, referral_id)
            return actions == [("referral.refused_unknown", "failed")]

        await eventually(told, within=30, what="sanad is told the envelope failed")


# -- no plaintext anywhere -------------------------------------------------------------------


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue  # a socket or a file that went away
    return found


async def test_no_plaintext_is_stored_or_logged_anywhere_on_the_network(
    running_network: Creds, network: Network
) -> None:
    canary = f"CANARY-{uuid.uuid4().hex}"
    note = f"NOTE-{uuid.uuid4().hex}"
    referral_id = await send(
        running_network, payload={**PERSON, "need_summary": f"Besoin urgent {canary}"}
    )
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await reaches(amal, referral_id, "received", "the envelope lands")
        read = (await amal.get(f"/api/v1/referrals/{referral_id}/payload")).json()
        assert canary in read["payload"]["need_summary"]  # the two organisations can read it
        await amal.post(
            f"/api/v1/referrals/{referral_id}/decline", json={"reason": "no_capacity", "note": note}
        )
        await reaches(sanad, referral_id, "declined", "sanad learns of the decline")
        notes = (await sanad.get(f"/api/v1/referrals/{referral_id}/payload")).json()["notes"]
        assert notes[0]["note"] == note
        # The conversation too: a message each way, read decrypted at the other end.
        asked = f"MESSAGE-{uuid.uuid4().hex}"
        answered = f"ANSWER-{uuid.uuid4().hex}"
        path = f"/api/v1/referrals/{referral_id}/messages"
        assert (await sanad.post(path, json={"text": f"Question {asked}"})).status_code == 201

        async def has(node: Any, needle: str) -> bool:
            messages = (await node.get(path)).json()["messages"]
            return any(needle in (m["text"] or "") for m in messages)

        await eventually(lambda: has(amal, asked), within=30, what="amal reads the message")
        assert (await amal.post(path, json={"text": f"Réponse {answered}"})).status_code == 201
        await eventually(lambda: has(sanad, answered), within=30, what="sanad reads the answer")
    # Every database of the network (the hub's included, and its write-ahead log), every
    # JetStream store of the hub and of the nodes, every log: ciphertext only.
    await _checkpoint(running_network)
    for needle in (canary, note, asked, answered):
        assert _files_containing(network.root, needle.encode()) == []


async def _checkpoint(creds: Creds) -> None:
    """Flush PostgreSQL's buffers to its files, so the scan sees what the database holds."""
    conn = await asyncpg.connect(creds["nodes"]["hub"]["database_url"])
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


# -- the NATS ingress --------------------------------------------------------------------------


async def test_a_member_system_refers_through_its_nodes_nats(running_network: Creds) -> None:
    token = await _system_token(running_network, "sanad", "caseworker")
    nc = await nats.connect(running_network["nodes"]["sanad"]["nats_url"])
    try:

        async def ask(action: str, body: dict[str, Any]) -> dict[str, Any]:
            reply = await nc.request(
                f"relais.cmd.referrals.{action}", json.dumps(body).encode(), timeout=10
            )
            answer: dict[str, Any] = json.loads(reply.data)
            return answer

        body = referral() | {"token": token, "idempotency_key": str(uuid.uuid4())}
        first = await ask("create", body)
        again = await ask("create", body)
        referral_id = first["result"]["referral_id"]
        assert again["result"]["referral_id"] == referral_id
        assert first["result"]["status"] == "sent"

        wrong = await ask(
            "create", referral(payload={**PERSON, "religion": "x"}) | {"token": token}
        )
        assert wrong["error"]["status"] == 422
        assert wrong["error"]["field"] == "payload.religion"
        stranger = await ask("get", {"token": "not-a-token", "referral_id": referral_id})
        assert stranger["error"]["status"] == 401
        withdrawn = await ask(
            "act", {"token": token, "referral_id": referral_id, "action": "accept"}
        )
        assert withdrawn["error"]["status"] == 403  # the sender does not accept its own
    finally:
        await nc.close()
    async with client(running_network, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the referral made over NATS lands")
    # amal's case system answers over amal's NATS; sanad's reads the outcome over sanad's.
    amal_token = await _system_token(running_network, "amal", "focal_point")
    amal_nc = await nats.connect(running_network["nodes"]["amal"]["nats_url"])
    sanad_nc = await nats.connect(running_network["nodes"]["sanad"]["nats_url"])
    try:
        for action in ("accept", "start"):
            done = await _ask(
                amal_nc, "act", {"token": amal_token, "referral_id": referral_id, "action": action}
            )
            assert "result" in done, done
        inbox = await _ask(amal_nc, "list", {"token": amal_token, "box": "inbox"})
        assert referral_id in [r["referral_id"] for r in inbox["result"]["items"]]

        async def started() -> bool:
            got = await _ask(sanad_nc, "get", {"token": token, "referral_id": referral_id})
            return bool(got["result"]["status"] == "in_progress")

        await eventually(started, within=30, what="sanad's system sees the answer")
    finally:
        await amal_nc.close()
        await sanad_nc.close()


async def _system_token(creds: Creds, node: str, role: str) -> str:
    async with client(creds, node, "admin") as admin:
        created = await admin.post(
            "/api/v1/auth/tokens", json={"name": "case-system", "roles": [role]}
        )
        assert created.status_code == 201, created.text
        return str(created.json()["token"])


async def _ask(nc: NatsClient, action: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await nc.request(
        f"relais.cmd.referrals.{action}", json.dumps(body).encode(), timeout=10
    )
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


# -- the deadlines clock ---------------------------------------------------------------------


async def _skew(database_url: str, hours: float) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE referrals.clock SET skew = make_interval(secs => $1)", hours * 3600
        )
    finally:
        await conn.close()


async def _events(nats_url: str, stream: str, subject: str, referral_id: str) -> list[Any]:
    """The ``data`` of the events about one referral on ``subject`` in a node's ``stream``."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe(
            subject, stream=stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        found = []
        try:
            while True:
                for msg in await sub.fetch(200, timeout=1):
                    event = json.loads(msg.data)
                    if (
                        event["data"].get("referral", event["data"]).get("referral_id")
                        == referral_id
                    ):
                        found.append(event["data"])
        except TimeoutError:
            pass
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def test_the_clock_reminds_escalates_and_expires(running_network: Creds) -> None:
    sanad_node = running_network["nodes"]["sanad"]
    hub_node = running_network["nodes"]["hub"]
    referral_id = await send(running_network, urgency="emergency")  # acknowledge within 4 h
    try:
        async with (
            client(running_network, "sanad", "caseworker") as sanad,
            client(running_network, "amal", "focal_point") as amal,
        ):
            await reaches(amal, referral_id, "received", "the envelope lands")

            await _skew(sanad_node["database_url"], 3.5)  # a quarter of the 4 h left

            async def reminded() -> bool:
                events = await _events(
                    sanad_node["nats_url"], "LOCAL", "relais.local.referrals.deadline", referral_id
                )
                return [(e["kind"], e["deadline"]) for e in events] == [("reminder", "acknowledge")]

            await eventually(reminded, within=20, what="a reminder before the deadline")

            await _skew(sanad_node["database_url"], 4.5)  # past the deadline

            escalated = "relais.net.sanad.secretariat.referral.escalated"

            async def escalation_at_hub() -> bool:
                return bool(await _events(hub_node["nats_url"], "INBOX", escalated, referral_id))

            await eventually(escalation_at_hub, within=30, what="the secretariat is told")
            escalation = (await _events(hub_node["nats_url"], "INBOX", escalated, referral_id))[0]
            assert set(escalation) == {
                "referral_id",
                "from_org",
                "to_org",
                "category",
                "urgency",
                "status",
                "deadline",
                "due_at",
            }  # metadata only

            await _skew(sanad_node["database_url"], 4 + 24 + 0.5)  # past the grace period
            await reaches(sanad, referral_id, "expired", "the sender's node expires it")
            await reaches(amal, referral_id, "expired", "the recipient learns it expired")
            others = await sanad.get(f"/api/v1/referrals/{referral_id}/suggestions")
            assert others.status_code == 200
            assert "amal" not in [s["org_id"] for s in others.json()]
    finally:
        await _skew(sanad_node["database_url"], 0)
