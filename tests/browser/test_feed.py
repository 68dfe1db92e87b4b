"""The notification feed says something, in the page's language: a referral sent to amal
arrives in its focal point's feed, live and after a reload alike, naming the sender as the
directory names it, the service and the urgency — in Arabic on an Arabic page, in French on a
French one, whatever the account's language."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.browser.test_notifications import WAIT_MS, send_referral
from tests.e2e.conftest import user


async def directory_words(creds: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """sanad's name and primary health's label in every language, as amal's directory has
    them."""
    token = user(creds, "amal", "focal_point")["token"]
    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        orgs = await client.get(url_of(creds, "amal", "/api/v1/directory/organisations"))
        categories = await client.get(
            url_of(creds, "amal", "/api/v1/directory/reference/categories")
        )
    assert orgs.status_code == 200 and categories.status_code == 200
    sanad = next(o for o in orgs.json() if o["org_id"] == "sanad")
    health = next(c for c in categories.json() if c["code"] == "primary_health")
    return sanad["name"], health["label"]


async def test_an_arriving_referral_reads_in_arabic_on_an_arabic_page_and_in_french_on_a_french_one(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    name, category = await directory_words(creds)
    assert name["ar"] != name["fr"] and category["ar"] != category["fr"]
    page = await open_page(contexts, browser, phone=True)
    await log_in(page, creds, "amal", "focal_point")  # a French account
    await page.goto(url_of(creds, "amal", "/lang/ar?next=/notifications"))
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await page.wait_for_timeout(500)  # the stream is open

    referral_id = await send_referral(creds, "Moussa")

    # Live: the item arrives without a reload, written in Arabic from its facts.
    item = page.locator("#feed li[data-notification]").filter(
        has=page.locator(f'a[href="/referrals/{referral_id}"]')
    )
    await expect(item).to_be_visible(timeout=WAIT_MS)
    await expect(item.get_by_role("link")).to_have_text(f"أرسلت {name['ar']} إحالة إلى منظمتكم")
    await expect(item).to_contain_text(category["ar"])
    await expect(item.locator(".badge.urgency-priority")).to_have_text("ذات أولوية")
    await expect(item.locator(".badge.new")).to_be_visible()
    for french in ("Une nouvelle orientation", name["fr"], category["fr"], "Prioritaire"):
        await expect(item).not_to_contain_text(french)
    live_text = await item.inner_text()
    await screenshot(page, "feed-ar-phone")

    # Reloaded: the page writes it the same way (one partial for both).
    await page.reload()
    item = page.locator(f'#feed li[data-notification]:has(a[href="/referrals/{referral_id}"])')
    await expect(item).to_be_visible()
    assert await item.inner_text() == live_text

    # The same item on a French page, in French.
    await page.goto(url_of(creds, "amal", "/lang/fr?next=/notifications"))
    await expect(page.locator("html")).to_have_attribute("dir", "ltr")
    item = page.locator(f'#feed li[data-notification]:has(a[href="/referrals/{referral_id}"])')
    await expect(item.get_by_role("link")).to_have_text(
        f"{name['fr']} a adressé une orientation à votre organisation"
    )
    await expect(item).to_contain_text(category["fr"])
    await expect(item.locator(".badge.urgency-priority")).to_have_text("Prioritaire")
    await expect(item).not_to_contain_text("Moussa")  # no personal data in the feed

    # The item leads to the referral, which amal may see.
    await item.get_by_role("link").click()
    await expect(page).to_have_url(url_of(creds, "amal", f"/referrals/{referral_id}"))
