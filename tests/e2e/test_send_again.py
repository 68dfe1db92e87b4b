"""Sending a referral again (issue 14, "no dead ends"), across real nodes: amal declines
sanad's referral, sanad sends the case to jusoor as a new referral that follows the first.
Both histories at sanad show the link, the sending again is audited, and jusoor receives an
ordinary referral that says nothing of the earlier one.

A network of its own with three members: in the demo no two organisations offer the same
service, so jusoor is given a primary health service here, through the hub's directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from shared.events import new_event_id
from tests.browser.conftest import (  # noqa: F401 (the browser's fixtures, used here)
    browser,
    contexts,
    log_in,
    open_page,
    screenshot,
    url_of,
)
from tests.e2e.conftest import client, network_of_its_own, user
from tests.e2e.test_referrals import PERSON, reaches, referral
from tests.waiting import eventually

Creds = dict[str, Any]
CATEGORY = "primary_health"
AMAL = "Centre de santé communautaire Amal"
JUSOOR = "Jusoor, association des migrants de Tanger"


@pytest.fixture(scope="module")
async def three_members() -> AsyncIterator[Creds]:
    async with network_of_its_own(("sanad", "amal", "jusoor"), "relais-again-") as (net, creds):
        await _jusoor_offers_primary_health(creds, net.hub.node_id)
        yield creds


async def _jusoor_offers_primary_health(creds: Creds, hub: str) -> None:
    async with client(creds, hub, "coordinator") as coordinator:
        path = "/api/v1/directory/organisations/jusoor"
        record = (await coordinator.get(path)).raise_for_status().json()
        record["services"].append(
            {
                "service_id": "soins_tanger",
                "category": CATEGORY,
                "description": {"fr": "Consultations de médecine générale à Tanger."},
                "languages": ["fra", "ary", "wol"],
                "cities": ["tanger"],
            }
        )
        record["version"] += 1
        (await coordinator.put(path, json=record)).raise_for_status()
    async with client(creds, "sanad", "caseworker") as sanad:

        async def sanad_knows() -> bool:
            found = await sanad.post("/api/v1/referrals/suggestions", json={"category": CATEGORY})
            return "jusoor" in [s["org_id"] for s in found.json()]

        await eventually(sanad_knows, within=60, what="jusoor's new service in sanad's roster")


async def _declined(creds: Creds) -> str:
    async with (
        client(creds, "sanad", "caseworker") as sanad,
        client(creds, "amal", "focal_point") as amal,
    ):
        sent = await sanad.post("/api/v1/referrals", json=referral(to_org="amal"))
        assert sent.status_code == 201, sent.text
        first = str(sent.json()["referral_id"])
        await reaches(amal, first, "received", "the first envelope lands at amal")
        declined = await amal.post(
            f"/api/v1/referrals/{first}/decline", json={"reason": "no_capacity"}
        )
        assert declined.status_code == 200, declined.text
        await reaches(sanad, first, "declined", "sanad learns of the decline")
        return first


async def test_a_declined_referral_is_sent_again_to_another_organisation(
    three_members: Creds,
) -> None:
    first = await _declined(three_members)
    async with (
        client(three_members, "sanad", "caseworker") as sanad,
        client(three_members, "sanad", "admin") as sanad_admin,
        client(three_members, "jusoor", "focal_point") as jusoor,
    ):
        others = (await sanad.get(f"/api/v1/referrals/{first}/suggestions")).json()
        assert [s["org_id"] for s in others] == ["jusoor"]  # amal, which declined, is not
        assert others[0]["reasons"], "each suggestion says why"

        again = await sanad.post("/api/v1/referrals", json=referral(to_org="jusoor", follows=first))
        assert again.status_code == 201, again.text
        second = str(again.json()["referral_id"])

        new = (await sanad.get(f"/api/v1/referrals/{second}")).json()
        assert new["follows"] == first
        assert [(h["change"], h["link"]) for h in new["history"]] == [
            ("sent", None),
            ("follows", first),
        ]
        old = (await sanad.get(f"/api/v1/referrals/{first}")).json()
        assert old["status"] == "declined"  # the earlier referral keeps its ending
        assert (old["history"][-1]["change"], old["history"][-1]["link"]) == (
            "sent_again",
            second,
        )
        assert (
            old["history"][-1]["by_actor"] == user(three_members, "sanad", "caseworker")["username"]
        )

        async def audited() -> bool:
            found = await sanad_admin.get(
                "/api/v1/audit/records",
                params={"action": "referral.sent_again", "object": f"referral:{first}"},
            )
            return bool(found.json()["items"])

        await eventually(audited, within=30, what="referral.sent_again in sanad's audit log")

        # The new recipient gets an ordinary referral: nothing of the earlier one or its decline.
        await reaches(jusoor, second, "received", "the new envelope lands at jusoor")
        at_jusoor = (await jusoor.get(f"/api/v1/referrals/{second}")).json()
        assert at_jusoor["follows"] is None
        # As any referral's: sent, then received; no link, no step of the earlier one.
        assert [(h["change"], h["link"]) for h in at_jusoor["history"]] == [
            ("sent", None),
            ("received", None),
        ]
        assert first not in str(at_jusoor)
        payload = (await jusoor.get(f"/api/v1/referrals/{second}/payload")).json()
        assert first not in str(payload) and "no_capacity" not in str(payload)
        assert (await jusoor.get(f"/api/v1/referrals/{first}")).status_code == 404


async def test_only_the_senders_own_ended_referral_can_be_followed(three_members: Creds) -> None:
    first = await _declined(three_members)
    async with (
        client(three_members, "sanad", "caseworker") as sanad,
        client(three_members, "amal", "caseworker") as amal,
    ):
        open_one = await sanad.post("/api/v1/referrals", json=referral(to_org="amal"))
        assert open_one.status_code == 201, open_one.text
        still_open = str(open_one.json()["referral_id"])
        before = (await sanad.get("/api/v1/referrals", params={"box": "outbox"})).json()

        cases = [
            # An open referral: not ended, so not sent again (it could be withdrawn first).
            (sanad, still_open, 409),
            # No such referral here (or another organisation's): this node cannot follow it.
            (sanad, new_event_id(), 422),
            # Amal holds the declined referral too, as its recipient: not amal's to send again.
            (amal, first, 422),
        ]
        for node, follows, code in cases:
            body = referral(to_org="jusoor", follows=follows)
            response = await node.post("/api/v1/referrals", json=body)
            assert response.status_code == code, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["field"] == "follows"

        malformed = await sanad.post(
            "/api/v1/referrals", json=referral(to_org="jusoor", follows="not-an-id")
        )
        assert malformed.status_code == 422, malformed.text
        # Nothing half-applied: no new referral, and the earlier ones' histories unchanged.
        after = (await sanad.get("/api/v1/referrals", params={"box": "outbox"})).json()
        assert [r["referral_id"] for r in after["items"]] == [
            r["referral_id"] for r in before["items"]
        ]
        history = (await sanad.get(f"/api/v1/referrals/{first}")).json()["history"]
        assert "sent_again" not in [h["change"] for h in history]


async def test_the_pages_send_a_declined_referral_again_carrying_the_data_when_asked(
    three_members: Creds,
    browser: Browser,  # noqa: F811 (the fixture imported above)
    contexts: list[BrowserContext],  # noqa: F811
) -> None:
    first = await _declined(three_members)
    page = await open_page(contexts, browser)
    await log_in(page, three_members, "sanad", "caseworker")
    await page.goto(url_of(three_members, "sanad", f"/referrals/{first}"))
    offer = page.locator("section.send-again")
    await expect(offer).to_be_visible()
    await offer.get_by_role("link", name="Envoyer à une autre organisation").click()

    # The other suggestions, with their reasons; amal, which declined, is not among them.
    jusoor = page.locator('li.suggestion:has(input[value="jusoor"])')
    await expect(jusoor.locator(".org-name")).to_have_text(JUSOOR)
    await expect(jusoor.locator(".reasons li").first).to_be_visible()
    await expect(page.locator('input[name="to_org"][value="amal"]')).to_have_count(0)
    await screenshot(page, "send-again-suggestions")
    await page.get_by_role("button", name="Suivant").click()
    await expect(page.get_by_role("alert")).to_contain_text("Choisissez l'organisation")
    await page.locator('li.suggestion:has(input[value="jusoor"]) input').check()
    await page.get_by_label("Reprendre les informations de la personne").check()
    await page.get_by_role("button", name="Suivant").click()

    # The wizard, at the person's details, filled from the earlier referral (an audited read).
    await expect(page.locator(".notice").first).to_contain_text("fait suite")
    await expect(page.locator('[name="payload.given_name"]')).to_have_value(PERSON["given_name"])
    await page.get_by_role("button", name="Suivant").click()
    await page.locator('input[name="legal_basis"][value="consent"]').check()
    await page.locator('input[name="consent_given"]').check()
    await page.get_by_role("button", name="Suivant").click()
    await expect(page.locator("dl.review")).to_contain_text(JUSOOR)
    await page.locator('button[name="go"][value="send"]').click()

    # The new referral's history points at the first, and the first's at the new one.
    await expect(page.locator(".notice").first).to_be_visible()
    second = page.url.split("?")[0].rsplit("/", 1)[-1]
    assert second != first
    follows = page.locator("ol.history a.linked-referral")
    await expect(follows).to_have_text("Fait suite à l'orientation vers " + AMAL)
    await follows.click()
    assert page.url.endswith(f"/referrals/{first}")
    sent_again = page.locator("ol.history a.linked-referral")
    await expect(sent_again).to_have_text("Renvoyée, à " + JUSOOR)
    await screenshot(page, "send-again-history")
    await sent_again.click()
    assert page.url.endswith(f"/referrals/{second}")

    async with (
        client(three_members, "sanad", "admin") as sanad_admin,
        client(three_members, "jusoor", "focal_point") as at_jusoor,
    ):

        async def carried_read_audited() -> bool:
            found = await sanad_admin.get(
                "/api/v1/audit/records",
                params={"action": "referral.payload_read", "object": f"referral:{first}"},
            )
            return bool(found.json()["items"])

        await eventually(carried_read_audited, within=30, what="the carried-over read audited")
        await reaches(at_jusoor, second, "received", "the new referral lands at jusoor")
        data = (await at_jusoor.get(f"/api/v1/referrals/{second}/payload")).json()
        assert data["payload"]["given_name"] == PERSON["given_name"]


async def test_without_the_box_ticked_the_person_is_entered_again(
    three_members: Creds,
    browser: Browser,  # noqa: F811 (the fixture imported above)
    contexts: list[BrowserContext],  # noqa: F811
) -> None:
    first = await _declined(three_members)
    page = await open_page(contexts, browser)
    await log_in(page, three_members, "sanad", "caseworker")
    await page.goto(url_of(three_members, "sanad", f"/referrals/{first}/send-again"))
    await page.locator('li.suggestion:has(input[value="jusoor"]) input').check()
    await page.get_by_role("button", name="Suivant").click()
    await expect(page.locator('[name="payload.given_name"]')).to_have_value("")
    async with client(three_members, "sanad", "admin") as sanad_admin:
        found = await sanad_admin.get(
            "/api/v1/audit/records",
            params={"action": "referral.payload_read", "object": f"referral:{first}"},
        )
        assert found.json()["items"] == []  # nothing read
