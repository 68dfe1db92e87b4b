"""One member floods another with junk envelopes, on real servers (issue 16, back-pressure):
the others' referrals keep arriving, the flooded node keeps a few dead letters (its budget) and
parks the rest as one incident, and the hub's coordinators see that one incident.

jusoor controls its own node, so it publishes what it likes into its own ``OUTBOX``: envelopes
addressed to amal, some well formed but signed with no key of jusoor's (refused on arrival),
some not envelopes at all (unreadable). Meanwhile sanad sends real referrals to amal: each
arrives while amal is still working through the flood (amal's consumer has a lane per sender,
shared/lanes.py), which is asserted in order, not in time. The latencies sanad's referrals saw,
before and during the flood, are printed (``pytest -s``) for the record.

On the same network (the hub's defaults: one leaf link per credential), a second leaf made with
a copy of amal's nkey is refused while amal's node is linked, and the refusal is audited at the
hub, shown to its coordinators and told to amal's admin."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
import uuid_utils

from deploy.network import Network
from shared.contracts.referrals import Header, ReferralOffered, SealedPayload
from shared.events import make_event
from shared.settings import NodeSettings
from tests.e2e.conftest import client, network_of_its_own
from tests.e2e.rogue_leaf import RogueLeaf
from tests.e2e.test_referrals import referral, status_at
from tests.waiting import eventually

Creds = dict[str, Any]
JUNK = 1500
BUDGET = NodeSettings.model_fields["refusal_budget"].default


@pytest.fixture(scope="module")
async def three_members() -> AsyncIterator[tuple[Network, Creds]]:
    async with network_of_its_own(("sanad", "amal", "jusoor"), "relais-flood-") as pair:
        yield pair


def junk_envelope(n: int) -> bytes:
    """A junk envelope from jusoor to amal: every other one well formed but signed by no key
    of jusoor's (refused on arrival), the others not a referral at all (unreadable)."""
    now = datetime.now(UTC)
    offer = ReferralOffered(
        header=Header(
            referral_id=str(uuid_utils.uuid7()),
            from_org="jusoor",
            to_org="amal",
            category="primary_health",
            urgency="priority",
            legal_basis="consent",
            created_at=now,
            acknowledge_by=now + timedelta(hours=4),
            answer_by=now + timedelta(days=2),
            sender_key_id="junk",
            recipient_key_id="junk",
            sender_encryption_key_id="junk",
        ),
        sealed=SealedPayload(
            nonce="AAAA", ciphertext="AAAA", key_for_recipient="AAAA", key_for_sender="AAAA"
        ),
        signature="rfc8785:AAAA",
    )
    event = make_event(offer, source="relais://jusoor/referrals", subject=offer.header.referral_id)
    if n % 2:
        return event.to_json()
    broken = json.loads(event.to_json())
    broken["data"] = {"junk": "x" * 200}
    return json.dumps(broken).encode()


async def flood(network: Network) -> None:
    nc = await nats.connect(network.plan("jusoor").nats_url)
    try:
        js = nc.jetstream()
        for start in range(0, JUNK, 50):
            await asyncio.gather(
                *(
                    js.publish(
                        "relais.net.jusoor.amal.referral.offered",
                        junk_envelope(n),
                        headers={"Nats-Msg-Id": str(uuid.uuid4())},
                    )
                    for n in range(start, start + 50)
                )
            )
    finally:
        await nc.close()


async def delivered(creds: Creds, what: str) -> float:
    """Send sanad → amal; seconds until amal has it."""
    async with (
        client(creds, "sanad", "caseworker") as sanad,
        client(creds, "amal", "focal_point") as amal,
    ):
        started = time.monotonic()
        sent = await sanad.post("/api/v1/referrals", json=referral(to_org="amal"))
        assert sent.status_code == 201, sent.text
        referral_id = sent.json()["referral_id"]

        async def there() -> bool:
            return await status_at(amal, referral_id) == "received"

        await eventually(there, within=180, what=f"sanad's referral reaches amal ({what})")
        return time.monotonic() - started


async def dead_letters(creds: Creds, node: str) -> list[dict[str, Any]]:
    async with client(creds, node, "admin") as admin:
        found = await admin.get("/api/v1/node/dead-letters", params={"limit": 1000})
        assert found.status_code == 200, found.text
        return list(found.json())


async def junk_counted(creds: Creds) -> int:
    """How many of jusoor's envelopes amal has refused so far (its incident's count)."""
    async with client(creds, "amal", "admin") as amal:
        found = (await amal.get("/api/v1/referrals/incidents")).json()
    return int(found[0]["refused"]) if found else 0


async def test_a_second_leaf_with_a_copied_nkey_is_refused_while_the_node_is_linked(
    three_members: tuple[Network, Creds],
) -> None:
    network, creds = three_members
    await delivered(creds, "amal is linked")
    leaf, answer = await RogueLeaf.connect(
        network.hub.leaf_port or 0,
        seed=network.nkey_seed(network.plan("amal")),
        ca_file=network.hub_material.ca_file,
    )
    try:
        print(f"\nthe hub's answer to a second leaf with amal's nkey: {answer}")
        assert answer.startswith("-ERR"), answer
        assert answer != "PONG"
    finally:
        await leaf.close()
    await delivered(creds, "amal's own link still holds")
    await told_of_the_second_link(network, creds)


async def told_of_the_second_link(network: Network, creds: Creds) -> None:
    """The refusal does not go unnoticed: audited at the hub, one incident on the hub's
    network page for its coordinators, and amal's admin notified."""
    hub = network.hub.node_id
    async with client(creds, hub, "admin") as admin:

        async def audited() -> list[dict[str, Any]]:
            found = await admin.get(
                "/api/v1/audit/records", params={"action": "link.second_refused"}
            )
            assert found.status_code == 200, found.text
            return list(found.json()["items"])

        async def any_audited() -> bool:
            return bool(await audited())

        # The directory first waits out the time a dead link of amal's could explain the
        # refusal (45 s with the hub's pings, services/directory/second_links.py).
        await eventually(any_audited, within=120, what="the hub audits the refused second link")
        (record,) = await audited()
        assert record["object"] == "organisation:amal"
        assert record["outcome"] == "refused"
    async with client(creds, hub, "coordinator") as coordinator:
        found = await coordinator.get("/api/v1/directory/second-links")
        assert found.status_code == 200, found.text
        assert [(i["org_id"], i["refused"] >= 1) for i in found.json()] == [("amal", True)]
        for lang, said in (
            ("en", "A second network link made with the credentials of"),
            ("fr", "Un second lien réseau établi avec les identifiants de"),
        ):
            page = await coordinator.get("/network", headers={"Accept-Language": lang})
            assert page.status_code == 200, page.text
            assert said in page.text
            assert 'data-org="amal"' in page.text
    async with client(creds, "amal", "admin") as amal_admin:

        async def notified() -> bool:
            items = (await amal_admin.get("/api/v1/notifications/feed")).json()["items"]
            return any(i["kind"] == "second_link_refused" for i in items)

        await eventually(notified, within=60, what="amal's admin is told of the second link")
    async with client(creds, "amal", "focal_point") as focal:
        items = (await focal.get("/api/v1/notifications/feed")).json()["items"]
        assert not any(i["kind"] == "second_link_refused" for i in items)


async def test_a_flood_by_one_member_leaves_the_others_referrals_flowing_and_one_incident(
    three_members: tuple[Network, Creds],
) -> None:
    network, creds = three_members
    before = [await delivered(creds, "before the flood") for _ in range(3)]
    letters_before = len(await dead_letters(creds, "amal"))

    flooding = asyncio.create_task(flood(network))
    during: list[float] = []
    counted_then: list[int] = []  # how many junk envelopes amal had handled when each arrived
    while not flooding.done() or len(during) < 3:
        during.append(await delivered(creds, "during the flood"))
        counted_then.append(await junk_counted(creds))
    await flooding
    print(
        f"\nsanad → amal, seconds: before the flood {[round(s, 2) for s in before]}, "
        f"during jusoor's flood of {JUNK} junk envelopes {[round(s, 2) for s in during]} "
        f"(max {max(before):.2f} before, {max(during):.2f} during); junk envelopes amal had "
        f"handled as each arrived: {counted_then}"
    )
    # What a user would notice, in order rather than time: sanad's referrals did not wait for
    # jusoor's flood to be worked through; each arrived while amal was still refusing it.
    assert all(counted < JUNK for counted in counted_then), counted_then

    hub = network.hub.node_id
    async with client(creds, "amal", "admin") as amal:

        async def all_counted() -> bool:
            found = (await amal.get("/api/v1/referrals/incidents")).json()
            return bool(found) and found[0]["refused"] == JUNK

        await eventually(all_counted, within=180, what="amal counts every junk envelope")
        (incident,) = (await amal.get("/api/v1/referrals/incidents")).json()
        assert incident["sender"] == "jusoor"
    # Only the budget's worth became dead letters; the rest are the one incident.
    letters = await dead_letters(creds, "amal")
    assert len(letters) - letters_before == BUDGET

    async with client(creds, hub, "coordinator") as coordinator:

        async def reported_in_full() -> bool:
            found = (await coordinator.get("/api/v1/directory/incidents")).json()
            return [(f["sender"], f["reporter"], f["refused"]) for f in found] == [
                ("jusoor", "amal", JUNK)
            ]

        await eventually(reported_in_full, within=120, what="the hub sees one incident, in full")
        page = await coordinator.get("/network", headers={"Accept-Language": "en"})
        assert page.status_code == 200, page.text
        assert f"sent {JUNK} refused envelopes to" in page.text
        assert 'href="#member-jusoor"' in page.text
        # The coordinator can act on it: jusoor is suspended from the same page's form.
        suspended = await coordinator.post(
            "/api/v1/directory/organisations/jusoor/membership",
            json={"action": "suspend", "reason": "flood of junk envelopes"},
        )
        assert suspended.status_code == 200, suspended.text
    # And sanad's referrals still flow.
    print(f"after the suspension: {round(await delivered(creds, 'after'), 2)} s")
