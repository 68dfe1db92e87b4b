"""The pages every role sees, in a real browser: the layout in Arabic right to left and
translated, errors from the API beside their field with what was typed kept, a 403 page, the
one-click capacity, and a screenshot of each main page."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import log_in, open_page, pattern, screenshot, url_of
from tests.e2e.test_referrals import send


async def test_arabic_mirrors_the_whole_layout_and_translates_it(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "sanad", "focal_point")
    await page.goto(url_of(running_network, "sanad", "/referrals?box=inbox"))
    await page.get_by_role("link", name="العربية").click()

    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await expect(page.locator("html")).to_have_attribute("lang", "ar")
    menu = page.get_by_role("navigation", name="القائمة الرئيسية")
    await expect(menu).to_contain_text("صندوق الوارد")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("صندوق الوارد")
    # Mirrored: the menu starts on the right, so its first item is right of its last.
    items = menu.locator("li")
    first, last = await items.first.bounding_box(), await items.last.bounding_box()
    assert first is not None and last is not None
    assert first["x"] > last["x"]
    await screenshot(page, "inbox-ar")
    await page.goto(url_of(running_network, "sanad", "/referrals/new"))
    await expect(page.locator("#category option").nth(1)).not_to_be_empty()
    await screenshot(page, "wizard-ar")


async def test_the_coordinators_dashboard_reads_in_arabic_too(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "hub", "coordinator")
    await page.goto(url_of(running_network, "hub", "/lang/ar?next=/network"))
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await expect(page.get_by_role("heading", level=2, name="الأعضاء حسب الجهة")).to_be_visible()
    await expect(page.locator("ul.bars").first).to_contain_text("الشرق")
    await screenshot(page, "network-ar")


async def test_a_page_the_role_may_not_see_is_a_403_page(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "sanad", "caseworker")
    response = await page.goto(url_of(running_network, "sanad", "/admin/users"))
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("Action non autorisée")
    menu = page.get_by_role("navigation", name="Menu principal")
    await expect(menu.get_by_role("link", name="Utilisateurs")).to_have_count(0)


async def test_an_api_error_is_shown_beside_its_field_keeping_what_was_typed(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "sanad", "admin")
    await page.goto(url_of(running_network, "sanad", "/admin/users"))
    await page.locator("#username").fill("nadia")
    await page.locator("#display_name").fill("Nadia El Amrani")
    await page.locator("#new-password").fill("court")
    await page.get_by_role("button", name="Ajouter l'utilisateur").click()
    await expect(page.locator("#password-error")).to_contain_text("Au moins")
    await expect(page.locator("#new-password")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#username")).to_have_value("nadia")
    await expect(page.locator("#display_name")).to_have_value("Nadia El Amrani")
    await screenshot(page, "users-error")

    await page.goto(url_of(running_network, "sanad", "/admin/tokens"))
    await page.locator("#token-name").fill("Logiciel de suivi")
    await page.locator('input[name="roles"][value="caseworker"]').check()
    await page.get_by_role("button", name="Créer le jeton").click()
    await expect(page.locator("#new-token")).to_contain_text("rls_")
    await screenshot(page, "tokens")


async def test_capacity_changes_in_one_click(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = await open_page(contexts, browser, phone=True)
    await log_in(page, running_network, "amal", "focal_point")
    await page.goto(url_of(running_network, "amal", "/organisation"))
    service = page.locator("section.service", has=page.locator("#service-ecoute_psychosociale"))
    await service.get_by_role("button", name="Liste d'attente").click()
    await expect(page.locator(".notice")).to_be_visible()
    # The hub publishes it, and the node's replica catches up.
    for _ in range(30):
        await page.reload()
        if await service.locator('button[aria-pressed="true"]').inner_text() == "Liste d'attente":
            break
        await page.wait_for_timeout(1000)
    await expect(service.locator('button[aria-pressed="true"]')).to_have_text("Liste d'attente")
    await screenshot(page, "organisation-phone")
    await service.get_by_role("button", name="Ouvert").click()


async def test_a_long_outbox_pages_back_to_older_referrals(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    for _ in range(51):  # more than a page holds
        await send(running_network)
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "sanad", "caseworker")
    await page.goto(url_of(running_network, "sanad", "/referrals?box=outbox"))
    newest = page.locator("tr.referral-row")
    await expect(newest).to_have_count(50)
    first_page = set(await newest.evaluate_all("rows => rows.map(r => r.dataset.referral)"))

    await page.get_by_role("link", name="Orientations plus anciennes").click()
    older = page.locator("tr.referral-row")
    await expect(older.first).to_be_visible()
    older_ids = set(await older.evaluate_all("rows => rows.map(r => r.dataset.referral)"))
    assert older_ids and not older_ids & first_page
    # An older page stays as it was read: it does not refresh itself over the newest rows.
    await expect(page.locator("#referral-rows")).not_to_have_attribute("data-live", pattern("/"))
    await page.get_by_role("link", name="Revenir aux orientations les plus récentes").click()
    await expect(page.locator("tr.referral-row")).to_have_count(50)
