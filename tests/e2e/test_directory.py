"""The directory through the demo network's API: membership, profiles, and their replicas."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.e2e.conftest import client
from tests.waiting import eventually


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
