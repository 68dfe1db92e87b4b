"""A message that does not verify at the recipient's node, on real servers: forged through the
writer's real outbox (signed over other words), it is refused there (neither kept nor offered,
the refusal audited) and the writer's node is told, so that its author sees it not delivered
and why, through the API and the NATS reply alike."""

from __future__ import annotations

import json
from typing import Any

import nats

from deploy.network import Network
from shared.crypto import NodeKeys
from tests.e2e.conftest import client
from tests.e2e.forgery import forge_message
from tests.e2e.test_conversation import thread, unread_at
from tests.e2e.test_referral_safety import _audit_actions, _system_token
from tests.e2e.test_referrals import reaches, send
from tests.waiting import eventually

Creds = dict[str, Any]


async def test_a_message_with_a_bad_signature_is_refused_and_its_writer_told(
    running_network: Creds, network: Network
) -> None:
    referral_id = await send(running_network)
    async with client(running_network, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
    keys = NodeKeys.load_or_create(network.key_dir(network.plan("sanad")))
    text = "Rendez-vous jeudi à 10 h"
    message_id = await forge_message(running_network, keys, "sanad", "amal", referral_id, text)

    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):

        async def mine() -> dict[str, Any]:
            messages = (await thread(sanad, referral_id))["messages"]
            found: dict[str, Any] = next(m for m in messages if m["message_id"] == message_id)
            return found

        async def refused_at_sanad() -> bool:
            return (await mine())["refused_reason"] is not None

        await eventually(refused_at_sanad, within=60, what="sanad learns its message was refused")
        told = await mine()
        assert told["refused_reason"] == "bad_signature"
        assert (told["text"], told["mine"]) == (text, True)  # its author still reads it

        # Refused before it was told back: nothing of it is kept or offered at amal.
        assert await unread_at(amal, referral_id) == 0
        assert (await thread(amal, referral_id))["messages"] == []

    amal_actions = await _audit_actions(
        running_network["nodes"]["amal"]["database_url"], referral_id
    )
    assert ("referral.message_refused", "failed") in amal_actions
    assert ("referral.message_received", "ok") not in amal_actions
    sanad_actions = await _audit_actions(
        running_network["nodes"]["sanad"]["database_url"], referral_id
    )
    assert ("referral.message_not_delivered", "failed") in sanad_actions

    # A member system reading the thread over NATS sees the same state.
    token = await _system_token(running_network, "sanad", "caseworker")
    nc = await nats.connect(running_network["nodes"]["sanad"]["nats_url"])
    try:
        reply = await nc.request(
            "relais.cmd.referrals.messages",
            json.dumps({"token": token, "referral_id": referral_id}).encode(),
            timeout=10,
        )
    finally:
        await nc.close()
    read = json.loads(reply.data)["result"]
    [over_nats] = [m for m in read["messages"] if m["message_id"] == message_id]
    assert over_nats["refused_reason"] == "bad_signature"
