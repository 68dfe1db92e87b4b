"""What a node's administrator sees when events do not flow as they should."""

from __future__ import annotations

from typing import Any

from deploy.network import Network
from shared.bus import Bus
from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
)
from shared.events import make_event
from tests.e2e.conftest import client
from tests.waiting import eventually


async def test_a_member_cannot_rewrite_the_directory_and_its_attempt_is_parked_visibly(
    running_network: dict[str, Any], network: Network
) -> None:
    forged = OrganisationPublished(
        org_id="amal",
        version=999,
        name=LocalisedText(fr="Usurpé"),
        kind=OrganisationKind.NGO,
        status=MembershipStatus.SUSPENDED,
        city="nulle_part",
    )
    event = make_event(forged, source="relais://sanad/directory", subject="amal")
    # sanad's own node publishes a broadcast claiming to be a directory record.
    bus = await Bus.connect(network.plan("sanad").nats_url, org="sanad", name="forger")
    try:
        await bus.publish("relais.net.sanad.all.organisation.published", event)
    finally:
        await bus.close()

    async with client(running_network, "amal", "admin") as amal:

        async def parked() -> bool:
            letters = (await amal.get("/api/v1/node/dead-letters")).json()
            return any(letter["event_id"] == event.id for letter in letters)

        await eventually(parked, within=30, what="amal parks the forged record")
        letters = (await amal.get("/api/v1/node/dead-letters")).json()
        letter = next(item for item in letters if item["event_id"] == event.id)
        assert letter["why"] == "terminated"
        assert "come from the hub" in letter["reason"]
        record = (await amal.get("/api/v1/directory/organisations/amal")).json()
        assert record["version"] < 999 and record["status"] == "active"


async def test_an_administrator_sees_the_node_streams_and_the_inbox_link(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "sanad", "admin") as sanad:
        streams = {s["name"]: s for s in (await sanad.get("/api/v1/node/streams")).json()}
    assert {"OUTBOX", "INBOX", "LOCAL", "DEADLETTER"} <= streams.keys()
    assert [source["name"] for source in streams["INBOX"]["sources"]] == ["TO_sanad"]
    assert streams["INBOX"]["messages"] > 0  # the directory broadcasts came in
