"""A person reads times in the zone they chose: amal's case worker picks New York on the
preferences page and the clock of a known deadline reads in New York time, named; a zone
that is none is refused beside its field, in French; back to the node's zone, Moroccan time.
And the feed groups a referral's notifications under one heading, live too."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.browser.test_feed import directory_words
from tests.browser.test_notifications import WAIT_MS
from tests.browser.test_times_and_figures import CASABLANCA, send, until_shown
from tests.e2e.conftest import client

NEW_YORK = ZoneInfo("America/New_York")
ZONE_FIELD = "Fuseau horaire des heures que je lis (pages, e-mails, SMS)"


async def org_names(creds: dict[str, Any]) -> dict[str, str]:
    """Every organisation's French name, as amal's directory has it."""
    async with client(creds, "amal", "focal_point") as amal:
        found = await amal.get("/api/v1/directory/organisations")
    assert found.status_code == 200, found.text
    return {o["org_id"]: o["name"]["fr"] for o in found.json()}


async def choose_zone(page: Page, creds: dict[str, Any], value: str) -> None:
    await page.goto(url_of(creds, "amal", "/notifications/preferences"))
    await page.get_by_label(ZONE_FIELD).select_option(value)
    await page.get_by_role("button", name="Enregistrer mes choix").click()
    await expect(page.locator(".notice")).to_be_visible()


async def test_a_person_who_picks_a_zone_reads_the_deadline_in_it(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    referral_id = await send(creds, "sanad", "amal", "primary_health")
    async with client(creds, "amal", "caseworker") as amal:
        page = await open_page(contexts, browser)
        await log_in(page, creds, "amal", "caseworker")
        row = f'tr[data-referral="{referral_id}"]'
        await page.goto(url_of(creds, "amal", "/referrals?box=inbox"))
        await until_shown(page, row)
        detail = (await amal.get(f"/api/v1/referrals/{referral_id}")).json()
    due = datetime.fromisoformat(detail["acknowledge_by"].replace("Z", "+00:00"))
    in_new_york = due.astimezone(NEW_YORK).strftime("%d/%m/%Y %H:%M")
    in_morocco = due.astimezone(CASABLANCA).strftime("%d/%m/%Y %H:%M")
    assert in_new_york != in_morocco
    shown = page.locator(f"{row} .clock time")
    await expect(shown).to_have_text(in_morocco)  # nobody chose yet: the node's zone

    try:
        await choose_zone(page, creds, "America/New_York")
        await expect(page.get_by_label(ZONE_FIELD)).to_have_value("America/New_York")
        await page.goto(url_of(creds, "amal", "/referrals?box=inbox"))
        await expect(shown).to_have_text(in_new_york)
        await expect(shown).to_have_attribute("title", "heure de America/New_York")
        await expect(page.locator(".site-footer")).to_contain_text(
            "Heures affichées : heure de America/New_York"
        )
        machine = await shown.get_attribute("datetime")
        assert machine is not None and datetime.fromisoformat(machine) == due
        await page.goto(url_of(creds, "amal", f"/referrals/{referral_id}"))
        await expect(page.locator(".clock time").first).to_have_text(in_new_york)
        await screenshot(page, "referral-new-york-time")

        # A zone that is none (a tampered form) is refused beside the field, in French.
        await page.goto(url_of(creds, "amal", "/notifications/preferences"))
        await page.locator("#timezone").evaluate(
            "select => { select.options[1].value = 'Mars/Olympus'; select.selectedIndex = 1; }"
        )
        await page.get_by_role("button", name="Enregistrer mes choix").click()
        field = page.locator(".field-error:has(#timezone)")
        await expect(field).to_contain_text("Choisissez une des valeurs proposées.")
        async with client(creds, "amal", "caseworker") as amal:
            kept = (await amal.get("/api/v1/notifications/preferences")).json()
        assert kept["timezone"] == "America/New_York"  # the refused zone was not saved
    finally:
        await choose_zone(page, creds, "")  # the node's zone again, for the other tests
    await page.goto(url_of(creds, "amal", "/referrals?box=inbox"))
    await expect(shown).to_have_text(in_morocco)
    await expect(shown).to_have_attribute("title", "heure du Maroc")
    await expect(page.locator(".site-footer")).to_contain_text("Heures affichées : heure du Maroc")


async def test_the_feed_groups_a_referrals_notifications_under_one_heading(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    referral_id = await send(creds, "sanad", "amal", "primary_health")
    page = await open_page(contexts, browser, phone=True)
    await log_in(page, creds, "amal", "focal_point")
    await page.goto(url_of(creds, "amal", "/notifications"))
    group = page.locator(f'#feed > li[data-feed-group="{referral_id}"]')
    await until_shown(page, f'#feed > li[data-feed-group="{referral_id}"] [data-notification]')
    await expect(group.locator("[data-notification]")).to_have_count(1)
    names = await org_names(creds)
    sanad_name, health = await directory_words(creds)
    await expect(group.get_by_role("heading", level=2)).to_have_text(
        f"Orientation de {sanad_name['fr']} vers {names['amal']} · {health['fr']}"
    )
    await page.wait_for_timeout(500)  # the stream is open

    # sanad withdraws it: amal's focal point is told, live, in the same group, at the top.
    async with client(creds, "sanad", "caseworker") as sanad:
        response = await sanad.post(
            f"/api/v1/referrals/{referral_id}/withdraw", json={"reason": "no_longer_needed"}
        )
    assert response.status_code == 200, response.text
    await expect(group.locator("[data-notification]")).to_have_count(2, timeout=WAIT_MS)
    await expect(page.locator("#feed > li").first).to_have_attribute("data-feed-group", referral_id)
    await expect(group.locator("[data-notification]").first).to_have_attribute(
        "data-kind", "referral_closed"
    )
    live = await group.inner_text()
    await screenshot(page, "feed-grouped-phone")
    await page.reload()
    await expect(group.locator("[data-notification]")).to_have_count(2)
    assert await group.inner_text() == live  # the live merge is what the page itself shows
