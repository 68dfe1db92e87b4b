"""A member system's commands over its node's NATS, as its developer would notice them: one
trace from its request through every event the referral causes on both nodes, and a bad
request refused with an error naming the field, the referral left as it was."""

from __future__ import annotations

import json
import secrets
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.federation import LOCAL, OUTBOX
from tests.e2e.conftest import client
from tests.e2e.test_referral_safety import _ask, _system_token
from tests.e2e.test_referrals import reaches, referral
from tests.waiting import eventually

Creds = dict[str, Any]


async def _traceparents(nats_url: str, stream: str, referral_id: str) -> dict[str, str]:
    """Each event about one referral in a node's ``stream``: its type and id, and the
    ``traceparent`` header it travelled with ("" when none)."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe(
            ">", stream=stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        found: dict[str, str] = {}
        try:
            while True:
                for msg in await sub.fetch(200, timeout=1):
                    if referral_id in msg.data.decode():
                        event = json.loads(msg.data)
                        key = f"{event['type']} {event['id']}"
                        found[key] = (msg.headers or {}).get("traceparent", "")
        except TimeoutError:
            pass
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def test_a_referral_made_over_nats_is_one_trace_on_both_nodes(
    running_network: Creds,
) -> None:
    token = await _system_token(running_network, "sanad", "caseworker")
    trace_id = secrets.token_hex(16)
    theirs = f"00-{trace_id}-{secrets.token_hex(8)}-01"  # the member system's own span
    nodes = running_network["nodes"]
    nc = await nats.connect(nodes["sanad"]["nats_url"])
    try:
        reply = await nc.request(
            "relais.cmd.referrals.create",
            json.dumps(referral() | {"token": token}).encode(),
            timeout=10,
            headers={"traceparent": theirs},
        )
    finally:
        await nc.close()
    answer = json.loads(reply.data)
    assert "result" in answer, answer
    referral_id = answer["result"]["referral_id"]
    async with client(running_network, "sanad", "caseworker") as sanad:
        await reaches(sanad, referral_id, "received", "amal's receipt reaches sanad")
    events: dict[str, dict[str, str]] = {}
    for node in ("sanad", "amal"):
        for stream in (OUTBOX, LOCAL):
            events[f"{node} {stream}"] = await _traceparents(
                nodes[node]["nats_url"], stream, referral_id
            )
    # The offer on sanad's way out, its change on both nodes, amal's receipt on its way back.
    assert any("referral.offered" in e for e in events["sanad OUTBOX"]), events
    assert any("referral.changed" in e for e in events["sanad LOCAL"]), events
    assert any("referral.changed" in e for e in events["amal LOCAL"]), events
    assert events["amal OUTBOX"], events
    outside = {
        f"{where}: {event}": traceparent
        for where, found in events.items()
        for event, traceparent in found.items()
        if traceparent.split("-")[1:2] != [trace_id]
    }
    assert not outside, f"events outside the command's trace {trace_id}: {outside}"


async def test_a_bad_request_names_its_field_and_changes_nothing(
    running_network: Creds,
) -> None:
    token = await _system_token(running_network, "sanad", "caseworker")
    nc = await nats.connect(running_network["nodes"]["sanad"]["nats_url"])
    try:
        made = await _ask(nc, "create", referral() | {"token": token})
        referral_id = made["result"]["referral_id"]
        async with client(running_network, "sanad", "caseworker") as sanad:
            # Settled first, so that nothing but the bad requests could change it meanwhile.
            await reaches(sanad, referral_id, "received", "amal's receipt reaches sanad")
        before = await _ask(nc, "get", {"token": token, "referral_id": referral_id})
        wrong = {
            "token": await _ask(nc, "create", referral()),
            "colour": await _ask(nc, "create", referral() | {"token": token, "colour": "red"}),
            "reason": await _ask(
                nc,
                "act",
                {
                    "token": token,
                    "referral_id": referral_id,
                    "action": "withdraw",
                    "reason": "bored_of_it",
                },
            ),
            "after": await _ask(nc, "list", {"token": token, "after": "bm90LWEtY3Vyc29y"}),
        }
        for field, answer in wrong.items():
            assert "error" in answer, (field, answer)
            assert (answer["error"]["type"], answer["error"]["status"]) == (
                "/problems/invalid",
                422,
            )
            assert answer["error"]["field"] == field, answer
        after = await _ask(nc, "get", {"token": token, "referral_id": referral_id})
        listed = await _ask(nc, "list", {"token": token, "box": "outbox", "limit": 200})
    finally:
        await nc.close()
    assert after["result"]["status"] == before["result"]["status"] == "received"
    assert after["result"]["history"] == before["result"]["history"]
    # The refused new referrals were not made: only the good one is listed as new.
    newer = [r["referral_id"] for r in listed["result"]["items"]]
    assert newer[0] == referral_id


async def test_a_member_system_revokes_consent_over_nats_and_the_recipient_loses_the_key(
    running_network: Creds,
) -> None:
    token = await _system_token(running_network, "sanad", "caseworker")
    nc = await nats.connect(running_network["nodes"]["sanad"]["nats_url"])
    try:
        made = await _ask(nc, "create", referral() | {"token": token})
        referral_id = made["result"]["referral_id"]
        async with client(running_network, "sanad", "caseworker") as sanad:
            await reaches(sanad, referral_id, "received", "amal's receipt reaches sanad")
        on_one = {"token": token, "referral_id": referral_id}
        revoked = await _ask(nc, "revoke-consent", on_one)
        assert revoked["result"]["consent_state"] == "revoked", revoked
        twice = await _ask(nc, "revoke-consent", on_one)
        assert (twice["error"]["status"], twice["error"]["field"]) == (409, "consent"), twice

        async def confirmed() -> bool:
            found = await _ask(nc, "get", on_one)
            return bool(found["result"]["consent_state"] == "key_destroyed")

        await eventually(confirmed, within=30, what="amal confirms it destroyed its key")
    finally:
        await nc.close()
    async with client(running_network, "amal", "focal_point") as amal:
        unreadable = await amal.get(f"/api/v1/referrals/{referral_id}/payload")
    assert unreadable.status_code == 409, unreadable.text
