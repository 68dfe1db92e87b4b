"""The conversation on a referral, on real servers: messages both ways through the hub, one
written while the other organisation's node is offline arriving once when it is back, unread
counts, the other side told without the words, bad input refused with nothing kept, and the
NATS commands of member systems."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import nats

from deploy.network import Network
from tests.e2e.conftest import client
from tests.e2e.test_referral_safety import _audit_actions, _system_token
from tests.e2e.test_referrals import reaches, send
from tests.e2e.test_store_and_forward import start_node, stop_node
from tests.waiting import eventually

Creds = dict[str, Any]


async def write(node: httpx.AsyncClient, referral_id: str, text: str) -> dict[str, Any]:
    response = await node.post(f"/api/v1/referrals/{referral_id}/messages", json={"text": text})
    assert response.status_code == 201, response.text
    written: dict[str, Any] = response.json()
    return written


async def thread(node: httpx.AsyncClient, referral_id: str) -> dict[str, Any]:
    response = await node.get(f"/api/v1/referrals/{referral_id}/messages")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def texts_at(node: httpx.AsyncClient, referral_id: str) -> list[str]:
    return [m["text"] for m in (await thread(node, referral_id))["messages"]]


async def unread_at(node: httpx.AsyncClient, referral_id: str) -> int:
    response = await node.get(f"/api/v1/referrals/{referral_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["unread_messages"])


async def arrives(node: httpx.AsyncClient, referral_id: str, count: int, within: float) -> None:
    """Wait until ``count`` of the other organisation's messages are unread at ``node`` (read
    the thread only then: reading marks it read)."""

    async def there() -> bool:
        return await unread_at(node, referral_id) >= count

    await eventually(there, within=within, what=f"{count} messages reach the other node")


async def feed_kinds(node: httpx.AsyncClient, referral_id: str) -> list[str]:
    items = (await node.get("/api/v1/notifications/feed")).json()["items"]
    return [i["kind"] for i in items if i["facts"].get("referral_id") == referral_id]


async def test_a_thread_both_ways_arrives_once_after_the_recipients_node_was_offline(
    running_network: Creds, network: Network
) -> None:
    referral_id = await send(running_network, urgency="emergency")
    tag = uuid.uuid4().hex[:8]
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
        question = f"A-t-elle son récépissé de l'asile ? {tag}"
        mine = await write(amal, referral_id, question)
        assert (mine["by_org"], mine["by_role"], mine["mine"]) == ("amal", "focal_point", True)
        await arrives(sanad, referral_id, 1, within=30)
        seen = await thread(sanad, referral_id)
        assert seen["unread"] == 1 and seen["may_write"] is True
        [asked] = seen["messages"]
        assert (asked["text"], asked["by_org"], asked["by_role"]) == (
            question,
            "amal",
            "focal_point",
        )
        assert asked["mine"] is False
        assert await unread_at(sanad, referral_id) == 0  # read by a person of the organisation

        async def case_worker_told() -> bool:
            return "outbox_message" in await feed_kinds(sanad, referral_id)

        await eventually(case_worker_told, within=30, what="sanad's case worker is told")
        sanad_feed = (await sanad.get("/api/v1/notifications/feed")).json()["items"]
        told = next(i for i in sanad_feed if i["kind"] == "outbox_message")
        assert tag not in json.dumps(told)  # that there is a message, never its words

    await stop_node(network, "amal")
    try:
        async with client(running_network, "sanad", "caseworker") as sanad:
            answers = [f"Oui, depuis mars {tag}", f"مرحبا، نعم {tag}"]
            for text in answers:
                written = await write(sanad, referral_id, text)
                assert (written["by_org"], written["by_role"]) == ("sanad", "caseworker")
            # The writer's own thread has them at once, whatever the other node's state.
            assert await texts_at(sanad, referral_id) == [question, *answers]
    finally:
        await start_node(network, "amal")

    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        await arrives(amal, referral_id, 2, within=90)
        at_amal = await thread(amal, referral_id)
        assert at_amal["unread"] == 2
        assert [m["text"] for m in at_amal["messages"]] == [question, *answers]
        assert [m["by_org"] for m in at_amal["messages"]] == ["amal", "sanad", "sanad"]
        ids = [m["message_id"] for m in at_amal["messages"]]
        assert len(set(ids)) == 3

        async def focal_points_told() -> bool:
            return (await feed_kinds(amal, referral_id)).count("inbox_message") == 2

        await eventually(focal_points_told, within=30, what="amal's focal point is told twice")
        thanks = f"Merci, nous la recevons demain {tag}"
        await write(amal, referral_id, thanks)
        await arrives(sanad, referral_id, 1, within=90)
        assert await texts_at(sanad, referral_id) == [question, *answers, thanks]
        # Exactly once on both nodes, in the same order.
        assert [m["message_id"] for m in (await thread(amal, referral_id))["messages"]] == [
            m["message_id"] for m in (await thread(sanad, referral_id))["messages"]
        ]
        assert await unread_at(amal, referral_id) == 0
    # Every reading of the words is in the audit log, like the payload's; so are both ends.
    actions = await _audit_actions(running_network["nodes"]["amal"]["database_url"], referral_id)
    for action in ("referral.message_sent", "referral.message_received"):
        assert (action, "ok") in actions
    assert actions.count(("referral.messages_read", "ok")) >= 2


async def test_bad_messages_are_refused_naming_why_and_nothing_is_kept(
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
        path = f"/api/v1/referrals/{referral_id}/messages"
        for text, why in (("", "empty"), ("   \n\t ", "empty"), ("x" * 4001, "at most 4000")):
            response = await sanad.post(path, json={"text": text})
            assert response.status_code == 422, response.text
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert why in json.dumps(problem)
            assert "text" in json.dumps(problem)
        assert (await sanad.post(path, json={})).status_code == 422
        # Not a party: the secretariat (a case system of its own) holds no such referral.
        third = httpx.AsyncClient(
            base_url=running_network["nodes"]["hub"]["url"],
            headers={"Authorization": f"Bearer {outsider}"},
            timeout=10,
        )
        async with third:
            assert (await third.post(path, json={"text": "Bonjour"})).status_code == 404
            assert (await third.get(path)).status_code == 404
        # The node's admin runs it, and reads no case's words.
        assert (await admin.get(path)).status_code == 403
        assert (await thread(sanad, referral_id))["messages"] == []
        # A real one still crosses, alone: nothing of the refused ones went anywhere.
        await write(sanad, referral_id, "Le seul message")
        await arrives(amal, referral_id, 1, within=30)
        assert await texts_at(amal, referral_id) == ["Le seul message"]


async def test_a_member_system_converses_through_its_nodes_nats(running_network: Creds) -> None:
    referral_id = await send(running_network)
    token = await _system_token(running_network, "amal", "focal_point")
    async with client(running_network, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
    nc = await nats.connect(running_network["nodes"]["amal"]["nats_url"])
    try:

        async def ask(action: str, body: dict[str, Any]) -> dict[str, Any]:
            reply = await nc.request(
                f"relais.cmd.referrals.{action}", json.dumps(body).encode(), timeout=10
            )
            answer: dict[str, Any] = json.loads(reply.data)
            return answer

        answer = await ask(
            "message", {"token": token, "referral_id": referral_id, "text": "Question du système"}
        )
        written = answer["result"]
        assert written["by_org"] == "amal" and written["text"] == "Question du système"
        refused = await ask("message", {"token": token, "referral_id": referral_id, "text": " "})
        assert refused["error"]["field"] == "text", refused
        read = (await ask("messages", {"token": token, "referral_id": referral_id}))["result"]
        assert [m["text"] for m in read["messages"]] == ["Question du système"]
    finally:
        await nc.close()
    async with client(running_network, "sanad", "caseworker") as sanad:
        await arrives(sanad, referral_id, 1, within=30)
        assert await texts_at(sanad, referral_id) == ["Question du système"]
