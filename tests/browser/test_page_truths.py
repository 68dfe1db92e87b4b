"""What the pages say is true, and what they offer first is what a person most likely wants:
a referral only sent is not said to be received; accepting comes before declining, and a
decline's reason is chosen, not preselected; the home page shows what waits; the secretariat
is not offered to suspend itself; an auditor reads the network's figures; an Arabic page shows
the demo's services in Arabic, its lists joined the Arabic way."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.browser.test_times_and_figures import send as send_between
from tests.browser.test_times_and_figures import until_shown
from tests.e2e.conftest import client


async def send(creds: dict[str, Any]) -> str:
    """A referral from Sanad to Amal, through the API as a member system would send it."""
    return await send_between(creds, "sanad", "amal", "primary_health")


async def test_the_sender_is_told_what_is_true_and_withdrawing_is_not_offered_first(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    referral_id = await send(creds)
    page = await open_page(contexts, browser)
    await log_in(page, creds, "sanad", "caseworker")
    # Where the wizard lands once it has sent.
    await page.goto(url_of(creds, "sanad", f"/referrals/{referral_id}?done=1"))
    status = (await page.locator(".facts .badge").first.inner_text()).strip()
    notice = page.locator(".notice")
    if status == "Envoyée":  # not confirmed yet: nobody may be said to be informed
        await expect(notice).to_contain_text("« Reçue »")
        await expect(notice).not_to_contain_text("informée")
    else:
        assert status == "Reçue", status
        await expect(notice).to_contain_text("informée")

    # Nothing forward for the sender: the page says so, and withdrawing sits apart, quieter.
    await expect(page.get_by_text("Rien n'est attendu de vous")).to_be_visible()
    await expect(page.locator(".actions:not(.actions-ending) form")).to_have_count(0)
    withdraw = page.locator(".actions-ending form.action-withdraw button")
    await expect(withdraw).to_have_class("secondary")
    await screenshot(page, "referral-sent-truths")


async def test_the_receiver_accepts_first_and_a_decline_needs_a_chosen_reason(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    referral_id = await send(creds)
    page = await open_page(contexts, browser)
    await log_in(page, creds, "amal", "focal_point")

    # The home page shows what waits for an answer, not the menu again.
    await until_shown(page, f'.waiting tr[data-referral="{referral_id}"]')
    await expect(page.locator(".tiles")).to_have_count(0)
    await page.locator(f'.waiting tr[data-referral="{referral_id}"] a').click()

    first = page.locator(".actions form").first
    await expect(first).to_have_class("action action-accept")
    decline = page.locator(".actions-ending form.action-decline")
    await expect(decline.locator("button")).to_have_class("secondary")
    await expect(decline.locator("select")).to_have_value("")  # no reason chosen for them

    await decline.locator("textarea").fill("Plus de place cette semaine.")
    await decline.locator("button").click()
    decline = page.locator("form.action-decline")
    await expect(decline.locator("#reason-error")).to_have_text("Choisissez un motif.")
    await expect(decline.locator("select")).to_have_attribute("aria-invalid", "true")
    await expect(decline.locator("textarea")).to_have_value("Plus de place cette semaine.")
    await expect(page.locator(".facts .badge").first).to_have_text("Reçue")  # nothing done
    await screenshot(page, "referral-decline-needs-reason")


async def test_the_secretariat_is_not_offered_to_suspend_itself_and_the_api_refuses(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    page = await open_page(contexts, browser)
    await log_in(page, creds, "hub", "coordinator")
    await page.goto(url_of(creds, "hub", "/network"))
    await expect(page.locator("#member-sanad form.suspend")).to_have_count(1)
    await expect(page.locator("#member-secretariat form.suspend")).to_have_count(0)
    await expect(page.locator("#member-secretariat")).to_contain_text("Le secrétariat")

    async with client(creds, "hub", "coordinator") as hub:
        refused = await hub.post(
            "/api/v1/directory/organisations/secretariat/membership",
            json={"action": "suspend", "reason": "essai"},
        )
        record = (await hub.get("/api/v1/directory/organisations/secretariat")).json()
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "secretariat" in refused.json()["detail"]
    assert record["status"] == "active"


async def test_an_auditor_reads_the_network_figures_the_api_gives_them(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    async with client(creds, "hub", "auditor") as hub:
        coverage = await hub.get("/api/v1/audit/figures/coverage")
    assert coverage.status_code == 200, coverage.text

    page = await open_page(contexts, browser)
    await log_in(page, creds, "hub", "auditor")
    response = await page.goto(url_of(creds, "hub", "/network"))
    assert response is not None and response.status == 200
    await expect(page.get_by_role("link", name="Réseau", exact=True)).to_be_visible()
    # The figures are drawn, not replaced by "not available" (what a 403 from the API gave).
    await expect(page.locator("#flows-title")).to_be_visible()
    await expect(page.get_by_text("ne sont pas encore disponibles")).to_have_count(0)
    # An auditor reads; the membership forms are not theirs.
    await expect(page.locator("form.suspend")).to_have_count(0)


async def test_an_arabic_page_shows_the_services_in_arabic_with_arabic_lists(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    async with client(creds, "amal", "admin") as amal:
        made = await amal.post(
            "/api/v1/auth/tokens",
            json={"name": "dossiers-arabe", "roles": ["caseworker", "focal_point"]},
        )
    assert made.status_code in (200, 201), made.text

    page = await open_page(contexts, browser)
    await log_in(page, creds, "amal", "admin")
    await page.context.add_cookies(
        [{"name": "relais_lang", "value": "ar", "url": url_of(creds, "amal", "/")}]
    )
    await page.goto(url_of(creds, "amal", "/organisation"))
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    described = page.locator("section.service p", has_text="استشارات في الطب العام")
    await expect(described).to_be_visible()
    await expect(described.locator("[lang]")).to_have_count(0)  # it is the page's language
    assert "Consultations" not in await page.locator("main").inner_text()
    await screenshot(page, "organisation-arabic")

    # Two roles, listed the Arabic way: "... و...", no Latin comma.
    await page.goto(url_of(creds, "amal", "/admin/tokens"))
    roles = page.locator("tr", has_text="dossiers-arabe").locator("td").nth(0)
    text = await roles.inner_text()
    assert "," not in text and " و" in text, text
