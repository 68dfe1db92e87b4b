"""Notifications in a real browser: the feed grows by itself when a referral arrives, with the
unread count beside the menu; the preferences say what is wrong beside the field, in Arabic
too, and keep what was typed; the administrator's rules and delivery log."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.e2e.conftest import user

WAIT_MS = 30_000


async def send_referral(creds: dict[str, Any], given_name: str) -> str:
    """A referral from sanad's case worker to amal, through the API; its id."""
    token = user(creds, "sanad", "caseworker")["token"]
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            url_of(creds, "sanad", "/api/v1/referrals"),
            headers={"Authorization": f"Bearer {token}"},
            json={
                "to_org": "amal",
                "category": "primary_health",
                "urgency": "priority",
                "legal_basis": "consent",
                "consent": {},
                "payload": {"given_name": given_name, "need_summary": "Toux depuis une semaine."},
            },
        )
    assert response.status_code == 201, response.text
    return str(response.json()["referral_id"])


async def test_the_feed_shows_an_arriving_referral_without_a_reload(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    page = await open_page(contexts, browser)
    await log_in(page, creds, "amal", "focal_point")
    await page.goto(url_of(creds, "amal", "/notifications"))
    if await page.get_by_role("button", name="Tout marquer comme lu").count():
        await page.get_by_role("button", name="Tout marquer comme lu").click()
    menu_count = page.get_by_role("navigation", name="Menu principal").locator("[data-unread]")
    await expect(menu_count).to_be_hidden()
    await page.wait_for_timeout(500)  # the stream is open: it has said "0 unread"

    referral_id = await send_referral(creds, "Moussa")

    arrived = page.locator(f'#feed li[data-notification] a[href="/referrals/{referral_id}"]')
    await expect(arrived).to_be_visible(timeout=WAIT_MS)
    await expect(arrived).to_contain_text("a adressé une orientation à votre organisation")
    await expect(menu_count).to_be_visible()
    await expect(menu_count).to_contain_text("1")
    await expect(page.locator("[data-unread-total]")).to_have_text("1")
    await screenshot(page, "notifications")

    await arrived.click()
    await expect(page).to_have_url(url_of(creds, "amal", f"/referrals/{referral_id}"))
    await page.goto(url_of(creds, "amal", "/notifications"))
    await page.get_by_role("button", name="Tout marquer comme lu").click()
    await expect(page.locator(".notice")).to_be_visible()
    await expect(menu_count).to_be_hidden()


async def test_a_wrong_address_is_named_beside_its_field_in_arabic_and_kept(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    page = await open_page(contexts, browser, phone=True)
    await log_in(page, creds, "sanad", "caseworker")
    await page.goto(url_of(creds, "sanad", "/lang/ar?next=/notifications/preferences"))
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await page.locator("#email").fill("awa-at-example")
    await page.locator("#phone").fill("0612345678")
    await page.locator("#channels-referral_outcome").select_option("in_app")
    await page.locator('button[type="submit"]:not(.quiet)').last.click()

    # Both errors beside their fields, in Arabic; what was typed is still there.
    await expect(page.locator("#email-error")).to_contain_text("أدخلوا عنوان بريد إلكتروني")
    await expect(page.locator("#email")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#email")).to_have_value("awa-at-example")
    await expect(page.locator("#phone")).to_have_value("0612345678")
    await expect(page.locator("#channels-referral_outcome")).to_have_value("in_app")
    await screenshot(page, "preferences-error-ar-phone")

    await page.locator("#email").fill("awa@sanad.example")
    await page.locator("#phone").fill("+212612345678")
    await page.locator('button[type="submit"]:not(.quiet)').last.click()
    await expect(page.locator(".notice")).to_be_visible()
    await expect(page.locator("#email")).to_have_value("awa@sanad.example")
    await expect(page.locator("#channels-referral_outcome")).to_have_value("in_app")


async def test_the_admin_adjusts_a_rule_and_reads_the_delivery_log(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    page = await open_page(contexts, browser)
    await log_in(page, creds, "amal", "admin")
    await page.goto(url_of(creds, "amal", "/admin/notifications"))
    rule = page.locator("#rule-referral_closed")
    await rule.locator('input[name="roles"][value="caseworker"]').check()
    await rule.get_by_role("button", name="Enregistrer cette règle").click()
    await expect(page.locator(".notice")).to_be_visible()
    rule = page.locator("#rule-referral_closed")
    await expect(rule.locator('input[name="roles"][value="caseworker"]')).to_be_checked()
    await expect(rule).to_contain_text("Adaptée par votre organisation")
    await screenshot(page, "notification-rules")
    await rule.get_by_role("button", name="Revenir à la règle par défaut").click()
    await expect(page.locator("#rule-referral_closed")).to_contain_text("Par défaut")

    # The referrals sent to amal told its focal point by e-mail (the test network's mail).
    await page.goto(url_of(creds, "amal", "/admin/deliveries"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Journal des envois")
    await screenshot(page, "deliveries")
