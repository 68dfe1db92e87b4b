"""The directory through the demo network's API: membership, profiles, and their replicas."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from deploy.network import Network
from shared.bus import Bus
from shared.contracts.directory import OrganisationChangeRequested, OrganisationPublished
from shared.crypto import NodeKeys
from shared.db import create_pool
from shared.events import make_event
from tests.e2e.conftest import client
from tests.waiting import eventually

ORGANISATIONS = "/api/v1/directory/organisations"


async def membership(hub: Any, org_id: str, action: str, reason: str | None = None) -> Any:
    return await hub.post(
        f"/api/v1/directory/organisations/{org_id}/membership",
        json={"action": action, "reason": reason},
    )


async def test_a_suspension_and_reinstatement_reach_every_node(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "hub", "coordinator") as hub:
        suspended = await membership(hub, "amal", "suspend", "no answer to referrals for 30 days")
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["status"] == "suspended"

        async with client(running_network, "sanad", "caseworker") as sanad:

            async def status_on_sanad() -> str:
                record = (await sanad.get("/api/v1/directory/organisations/amal")).json()
                return str(record["status"])

            async def sees_suspended() -> bool:
                return await status_on_sanad() == "suspended"

            await eventually(sees_suspended, within=20, what="sanad sees amal suspended")
            reinstated = await membership(hub, "amal", "reinstate")
            assert reinstated.json()["status"] == "active"

            async def sees_active() -> bool:
                return await status_on_sanad() == "active"

            await eventually(sees_active, within=20, what="sanad sees amal reinstated")


async def test_refused_membership_changes_say_why(running_network: dict[str, Any]) -> None:
    async with client(running_network, "hub", "coordinator") as hub:
        again = await membership(hub, "sanad", "admit")
        assert again.status_code == 409
        assert again.json()["type"] == "/problems/invalid-transition"
        no_reason = await membership(hub, "sanad", "suspend", "")
        assert (no_reason.status_code, no_reason.json()["field"]) == (422, "reason")
        unknown = await membership(hub, "nowhere", "suspend", "x")
        assert unknown.status_code == 404
        bad_action = await membership(hub, "sanad", "promote")
        assert (bad_action.status_code, bad_action.json()["field"]) == (422, "action")
    async with client(running_network, "sanad", "admin") as sanad:
        # A member node's admin cannot run the network's membership.
        refused = await membership(sanad, "amal", "suspend", "rivalry")
        assert refused.status_code == 403


async def test_every_node_holds_the_services_of_the_members(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "amal", "caseworker") as amal:
        sanad = (await amal.get("/api/v1/directory/organisations/sanad")).json()
    assert {s["category"] for s in sanad["services"]} == {"legal_aid", "asylum_regularisation"}
    assert sanad["city"] == "rabat"


async def test_the_network_map_exports_as_hsds_and_as_a_3w_spreadsheet(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "amal", "focal_point") as amal:
        hsds = (await amal.get("/api/v1/directory/hsds/organizations")).json()
        spreadsheet = await amal.get("/api/v1/directory/exports/3w.csv")
    names = {organization["name"] for organization in hsds["contents"]}
    assert "Association Sanad pour l'accès au droit" in names
    assert spreadsheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(spreadsheet.content.decode("utf-8-sig"))))
    assert rows[1][0].startswith("#org")
    assert any("sanad" in row for row in rows[2:])


async def test_a_focal_point_sets_a_capacity_that_the_hub_publishes_to_every_node(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "sanad", "focal_point") as sanad:
        sent = await sanad.put(
            "/api/v1/directory/organisations/sanad/services/permanence_juridique/capacity",
            json={"capacity": "closed"},
        )
        assert sent.status_code == 202, sent.text
        version = sent.json()["version"]

        async def published() -> bool:
            changes = (await sanad.get("/api/v1/directory/organisations/sanad/changes")).json()
            return any(c["version"] == version and c["state"] == "published" for c in changes)

        await eventually(published, within=30, what="the hub publishes sanad's change")

    async with client(running_network, "amal", "caseworker") as amal:

        async def closed_on_amal() -> bool:
            record = (await amal.get("/api/v1/directory/organisations/sanad")).json()
            offer = next(s for s in record["services"] if s["service_id"] == "permanence_juridique")
            return bool(offer["capacity"] == "closed" and record["version"] == version)

        await eventually(closed_on_amal, within=30, what="amal sees sanad's capacity closed")


async def test_staff_cannot_change_another_organisations_record(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "sanad", "focal_point") as sanad:
        other = await sanad.put(
            "/api/v1/directory/organisations/amal/services/soins_primaires/capacity",
            json={"capacity": "closed"},
        )
        assert other.status_code == 403
        unknown = await sanad.put(
            "/api/v1/directory/organisations/sanad/services/nothing_here/capacity",
            json={"capacity": "closed"},
        )
        assert (unknown.status_code, unknown.json()["field"]) == (404, "service_id")
        record = (await sanad.get("/api/v1/directory/organisations/sanad")).json()
        record["version"] += 1
        record["status"] = "suspended"  # membership is the coordinators' to set
        own_status = await sanad.post("/api/v1/directory/organisations/sanad/changes", json=record)
        assert (own_status.status_code, own_status.json()["field"]) == (403, "status")


async def test_the_hub_refuses_a_change_a_node_publishes_for_another_organisation(
    running_network: dict[str, Any], network: Network
) -> None:
    async with client(running_network, "hub", "coordinator") as hub:
        amal = OrganisationPublished.model_validate(
            (await hub.get("/api/v1/directory/organisations/amal")).json()
        )
    forged = amal.model_copy(
        update={"version": amal.version + 1, "website": "https://evil.example"}
    )
    # sanad's own node, with sanad's real key, claims a change to amal's record.
    keys = NodeKeys.load_or_create(network.key_dir(network.plan("sanad")))
    key_id, signature = keys.sign(forged.model_dump(mode="json"))
    request = OrganisationChangeRequested(record=forged, key_id=key_id, signature=signature)
    event = make_event(request, source="relais://sanad/directory")
    bus = await Bus.connect(network.plan("sanad").nats_url, org="sanad", name="forger")
    try:
        await bus.publish("relais.net.sanad.secretariat.organisation.change_requested", event)
    finally:
        await bus.close()

    async with client(running_network, "hub", "admin") as hub:

        async def parked() -> bool:
            letters = (await hub.get("/api/v1/node/dead-letters")).json()
            return any(letter["event_id"] == event.id for letter in letters)

        await eventually(parked, within=30, what="the hub parks the forged change")
        record = (await hub.get("/api/v1/directory/organisations/amal")).json()
    assert record["website"] != "https://evil.example"


async def test_other_services_ask_the_directory_over_the_nodes_nats(
    running_network: dict[str, Any], network: Network
) -> None:
    bus = await Bus.connect(network.plan("sanad").nats_url, org="sanad", name="a-service")
    try:

        async def ask(subject: str, request: dict[str, Any]) -> dict[str, Any]:
            reply = await bus.nc.request(subject, json.dumps(request).encode(), timeout=5)
            answer: dict[str, Any] = json.loads(reply.data)
            return answer

        found = await ask(
            "relais.cmd.directory.match",
            {"category": "primary_health", "city": "oujda", "languages": ["fr"]},
        )
        best = found["result"][0]
        assert best["org_id"] == "amal"
        assert {"code": "same_city", "city": "oujda"} in best["reasons"]
        wrong = await ask("relais.cmd.directory.match", {"category": "astrology"})
        assert wrong["error"]["type"] == "/problems/invalid"
        assert wrong["error"]["field"] == "category"
        missing = await ask("relais.cmd.directory.organisation", {"org_id": "nowhere"})
        assert missing["error"]["status"] == 404
        names = (await ask("relais.cmd.directory.categories", {}))["result"]
        assert names["primary_health"]["fr"] == "Soins de santé primaires"
    finally:
        await bus.close()


async def test_a_replica_lost_entirely_is_rebuilt_from_the_hub(
    running_network: dict[str, Any],
) -> None:
    async with client(running_network, "hub", "coordinator") as hub:
        expected = {o["org_id"]: o["version"] for o in (await hub.get(ORGANISATIONS)).json()}
    pool = await create_pool(running_network["nodes"]["amal"]["database_url"], max_size=1)
    try:
        await pool.execute("TRUNCATE directory.organisation CASCADE")
    finally:
        await pool.close()

    async with client(running_network, "amal", "admin") as amal:
        assert (await amal.get(ORGANISATIONS)).json() == []
        asked = await amal.post("/api/v1/directory/replica/replay")
        assert asked.status_code == 202

        async def rebuilt() -> bool:
            held = {o["org_id"]: o["version"] for o in (await amal.get(ORGANISATIONS)).json()}
            return held == expected

        await eventually(rebuilt, within=60, what="amal's replica rebuilt from the hub")


async def test_a_node_catches_up_after_being_offline_and_reads_while_the_hub_is_away(
    running_network: dict[str, Any], network: Network
) -> None:
    await network.supervisor.stop("node-amal")
    try:
        async with client(running_network, "hub", "coordinator") as hub:
            sanad = (await hub.get(f"{ORGANISATIONS}/sanad")).json()
            changed = {**sanad, "version": sanad["version"] + 1, "website": "https://sanad.ma"}
            assert (await hub.put(f"{ORGANISATIONS}/sanad", json=changed)).status_code == 200
    finally:
        await network.supervisor.start(network.node_process(network.plan("amal")))

    async with client(running_network, "amal", "caseworker") as amal:

        async def caught_up() -> bool:
            record = (await amal.get(f"{ORGANISATIONS}/sanad")).json()
            return bool(record["version"] == changed["version"])

        await eventually(caught_up, within=60, what="amal catches up after its outage")

        await network.supervisor.stop("nats-hub")
        try:
            # The replica serves reads and matching with the hub unreachable.
            assert (await amal.get(f"{ORGANISATIONS}/sanad")).json()[
                "website"
            ] == "https://sanad.ma"
            found = await amal.post(
                "/api/v1/directory/match", json={"category": "legal_aid", "city": "rabat"}
            )
            assert found.status_code == 200
        finally:
            await network.supervisor.start(network.nats_process(network.hub))
            await network.wait_for_leaf_links()
