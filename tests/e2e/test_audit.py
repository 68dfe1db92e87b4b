"""The audit log on the running network: what a node does is chained, its checkpoints reach
the hub, `relais audit verify` passes, and names the record someone edits in PostgreSQL; the hub
keeps the network log and refuses forged or contradictory checkpoints, loudly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from deploy.network import Network
from shared.bus import Bus
from shared.contracts.audit import AuditCheckpointed, checkpoint_document
from shared.crypto import NodeKeys
from shared.events import make_event, registry
from tests.e2e.conftest import client, relais, user
from tests.waiting import eventually


def credentials_file(creds: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(creds))
    return path


async def checkpoint_now(creds: dict[str, Any], node: str) -> int:
    """Sign a checkpoint of the node's chain now; the sequence number it covers."""
    async with client(creds, node, "admin") as admin:
        # A verification is itself recorded, straight into the chain: there is a new head.
        assert (await admin.get("/api/v1/audit/verification")).json()["ok"]
        made = await admin.post("/api/v1/audit/checkpoints")
        assert made.status_code == 201, made.text
        own = await admin.get("/api/v1/audit/checkpoints")
    return int(own.json()[-1]["seq"])


async def hub_has_checkpoint(creds: dict[str, Any], org: str, seq: int) -> bool:
    async with client(creds, "hub", "auditor") as auditor:
        response = await auditor.get("/api/v1/audit/network/checkpoints", params={"org": org})
    return any(c["seq"] >= seq for c in response.json())


async def test_a_login_is_chained_and_the_chain_verifies_until_someone_edits_a_record(
    running_network: dict[str, Any], tmp_path: Path
) -> None:
    admin = user(running_network, "sanad", "admin")
    async with client(running_network, "sanad") as anonymous:
        login = await anonymous.post(
            "/api/v1/auth/token",
            json={"username": admin["username"], "password": admin["password"]},
        )
        assert login.status_code == 200
    async with client(running_network, "sanad", "admin") as sanad:

        async def login_recorded() -> bool:
            response = await sanad.get(
                "/api/v1/audit/records",
                params={"action": "session.login", "actor": f"user:{admin['username']}"},
            )
            return bool(response.json()["items"])

        await eventually(login_recorded, within=30, what="the login in sanad's audit log")
        found = await sanad.get("/api/v1/audit/records", params={"action": "session.login"})
        record = found.json()["items"][-1]
        assert record["actor_org"] == "sanad" and record["service"] == "auth"

    seq = await checkpoint_now(running_network, "sanad")

    async def at_the_hub() -> bool:
        return await hub_has_checkpoint(running_network, "sanad", seq)

    await eventually(at_the_hub, within=60, what="sanad's checkpoint kept by the hub")

    path = credentials_file(running_network, tmp_path)
    code, out = await relais("audit", "verify", "--node", "sanad", "--credentials", str(path))
    assert code == 0, out
    assert "The audit chain of sanad verifies" in out

    database = await asyncpg.connect(running_network["nodes"]["sanad"]["database_url"])
    try:

        async def edit(actor: str) -> None:
            async with database.transaction():
                await database.execute("ALTER TABLE audit.entry DISABLE TRIGGER entry_append_only")
                await database.execute(
                    "UPDATE audit.entry SET actor = $1 WHERE seq = $2", actor, record["seq"]
                )
                await database.execute("ALTER TABLE audit.entry ENABLE TRIGGER entry_append_only")

        await edit("user:somebody_else")
        code, out = await relais("audit", "verify", "--node", "sanad", "--credentials", str(path))
        assert code == 1, out
        assert f"Record {record['seq']} was modified after it was written." in out

        code, out = await relais(
            "audit", "verify", "--node", "sanad", "--credentials", str(path), "--json"
        )
        report = json.loads(out)
        assert code == 1 and report["ok"] is False
        assert (report["finding"]["problem"], report["finding"]["seq"]) == (
            "modified",
            record["seq"],
        )
    finally:
        await edit(record["actor"])
        await database.close()
    code, out = await relais("audit", "verify", "--node", "sanad", "--credentials", str(path))
    assert code == 0, out


async def test_checkpoints_made_while_the_node_was_offline_reach_the_hub_and_verify(
    running_network: dict[str, Any], network: Network, tmp_path: Path
) -> None:
    plan = network.plan("amal")
    await network.supervisor.stop("nats-amal")  # amal's link to the hub, and its broker, down
    try:
        seq = await checkpoint_now(running_network, "amal")  # signed and queued locally
        assert not await hub_has_checkpoint(running_network, "amal", seq)
    finally:
        await network.supervisor.start(network.nats_process(plan))

    async def at_the_hub() -> bool:
        return await hub_has_checkpoint(running_network, "amal", seq)

    await eventually(at_the_hub, within=120, what="amal's offline checkpoint at the hub")
    path = credentials_file(running_network, tmp_path)
    code, out = await relais(
        "audit", "verify", "--node", "amal", "--credentials", str(path), "--json"
    )
    report = json.loads(out)
    assert code == 0, out
    assert report["last_seq"] >= seq and report["checkpoints"] >= 2  # its own, and the hub's


async def test_the_hub_refuses_a_forged_or_contradictory_checkpoint_and_raises_an_alert(
    running_network: dict[str, Any], network: Network
) -> None:
    seq = await checkpoint_now(running_network, "sanad")

    async def at_the_hub() -> bool:
        return await hub_has_checkpoint(running_network, "sanad", seq)

    await eventually(at_the_hub, within=60, what="sanad's checkpoint kept by the hub")
    keys = NodeKeys.load_or_create(network.key_dir(network.plan("sanad")))
    at = datetime.now(UTC)
    other_hash = "f" * 64
    key_id, good_signature = keys.sign(checkpoint_document("sanad", "sanad", seq, other_hash, at))
    contradicting = AuditCheckpointed(
        org="sanad",
        node_id="sanad",
        seq=seq,
        hash=other_hash,
        at=at,
        key_id=key_id,
        signature=good_signature,
    )
    forged = contradicting.model_copy(update={"seq": seq + 1, "signature": "A" * 86 + "=="})
    subject = registry.for_payload(AuditCheckpointed).subject(
        sender="sanad", recipient="secretariat"
    )
    bus = await Bus.connect(network.plan("sanad").nats_url, org="sanad", name="test-forger")
    try:
        for payload in (forged, contradicting):
            await bus.publish(subject, make_event(payload, source="relais://sanad/audit"))
    finally:
        await bus.close()

    async with client(running_network, "hub", "coordinator") as coordinator:

        async def alerted() -> bool:
            response = await coordinator.get("/api/v1/audit/network/alerts")
            kinds = {a["kind"] for a in response.json() if a["org"] == "sanad"}
            return {"bad_signature", "contradiction"} <= kinds

        await eventually(alerted, within=60, what="both refusals raised as alerts at the hub")
        kept = await coordinator.get("/api/v1/audit/network/checkpoints", params={"org": "sanad"})
        assert other_hash not in {c["hash"] for c in kept.json()}
    async with client(running_network, "hub", "admin") as hub_admin:
        refused = await hub_admin.get(
            "/api/v1/audit/records", params={"action": "checkpoint.refused"}
        )
        assert {r["object"] for r in refused.json()["items"]} == {"node:sanad"}
        assert {r["outcome"] for r in refused.json()["items"]} == {"refused"}


async def test_the_hub_keeps_the_network_log_of_membership_without_focal_points(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "hub", "coordinator") as coordinator:

        async def logged() -> bool:
            response = await coordinator.get(
                "/api/v1/audit/network",
                params={"action": "organisation.published", "object": "organisation:amal"},
            )
            return bool(response.json()["items"])

        await eventually(logged, within=30, what="amal's directory record in the network log")
        page = await coordinator.get(
            "/api/v1/audit/network",
            params={"action": "organisation.published", "object": "organisation:amal"},
        )
        item = page.json()["items"][-1]
        assert item["object"] == "organisation:amal" and item["from_org"] == "secretariat"
        assert "focal_points" not in json.dumps(item) and item["meta"]["status"] == "active"
        coverage = await coordinator.get("/api/v1/audit/figures/coverage")
        assert coverage.status_code == 200 and coverage.json()
        export = await coordinator.get(
            "/api/v1/audit/network/export", params={"format": "ndjson", "org": "amal"}
        )
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert lines and all("amal" in (x["from_org"], x["to_org"]) for x in lines)
    async with client(running_network, "sanad", "admin") as member_admin:
        refused = await member_admin.get("/api/v1/audit/network")
        assert refused.status_code == 403
