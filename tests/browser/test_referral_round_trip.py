"""A referral's whole loop in the browser: a case worker at one member's node sends it with the
wizard; it appears by itself in the other member's inbox; its focal point accepts, starts and
completes it; the sender sees the outcome; the coordinator sees the flow counted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of

WAIT_MS = 30_000


async def next_step(page: Page) -> None:
    await page.locator('button[name="go"][value="next"]').click()


async def reload_until(page: Page, selector: str, text: str, within: float = 45) -> None:
    """Reload ``page`` until ``selector`` shows ``text``: for what crosses the network."""
    deadline = time.monotonic() + within
    while True:
        if text in (await page.locator(selector).all_inner_texts() or [""])[0]:
            return
        if time.monotonic() > deadline:
            await expect(page.locator(selector).first).to_contain_text(text)
        await asyncio.sleep(1)
        await page.reload()


async def test_a_referral_sent_with_the_wizard_arrives_live_and_its_outcome_comes_back(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    receiver = await open_page(contexts, browser)
    await log_in(receiver, creds, "amal", "focal_point")
    await receiver.goto(url_of(creds, "amal", "/referrals?box=inbox"))

    # The sender, on a phone.
    sender = await open_page(contexts, browser, phone=True)
    await log_in(sender, creds, "sanad", "caseworker")
    await sender.goto(url_of(creds, "sanad", "/referrals/new"))
    await sender.locator("#category").select_option("primary_health")
    await sender.locator('input[name="urgency"][value="priority"]').check()
    await sender.locator("#city").select_option("oujda")
    await sender.locator("#languages").select_option(["fra"])
    await screenshot(sender, "wizard-1-need-phone")
    await next_step(sender)

    # Suggestions, with the reasons for their rank.
    amal = sender.locator('li.suggestion:has(input[value="amal"])')
    await expect(amal.locator(".reasons")).to_contain_text("Travaille dans la ville")
    await screenshot(sender, "wizard-2-organisation-phone")
    await amal.locator("input").check()
    await next_step(sender)

    # Only the category's fields; a required one left empty is named beside it.
    await expect(sender.locator('[name="payload.given_name"]')).to_be_visible()
    await expect(sender.locator('[name="payload.hearing_date"]')).to_have_count(0)
    await next_step(sender)
    await expect(sender.locator("#payload-given_name-error")).to_contain_text("Remplissez ce champ")
    await sender.locator('[name="payload.given_name"]').fill("Aminata")
    await sender.locator('[name="payload.need_summary"]').fill("Fièvre depuis trois jours.")
    await sender.locator('input[type="checkbox"][name="payload.interpreter_needed"]').check()
    await screenshot(sender, "wizard-3-details-phone")
    await next_step(sender)

    # Consent is confirmed, not assumed.
    await sender.locator('input[name="legal_basis"][value="consent"]').check()
    await next_step(sender)
    await expect(sender.locator("#consent_given-error")).to_be_visible()
    await sender.locator('input[name="consent_given"]').check()
    await screenshot(sender, "wizard-4-basis-phone")
    await next_step(sender)

    await expect(sender.locator("dl.review")).to_contain_text("Aminata")
    await screenshot(sender, "wizard-5-review-phone")
    await sender.locator('button[name="go"][value="send"]').click()
    await expect(sender.locator(".notice")).to_be_visible()
    referral_url = sender.url.split("?")[0]
    referral_id = referral_url.rsplit("/", 1)[-1]

    # It arrives in the receiver's inbox without anyone reloading the page.
    arrived = receiver.locator(f'tr[data-referral="{referral_id}"]')
    await expect(arrived).to_be_visible(timeout=WAIT_MS)
    await expect(arrived).to_contain_text("Association Sanad")
    await expect(arrived.locator(".clock")).to_be_visible()
    await screenshot(receiver, "inbox")

    await arrived.locator("a").click()
    await receiver.locator("form.action-accept button").click()
    await expect(receiver.locator(".facts .badge").first).to_contain_text("Accepté")
    await receiver.locator("form.action-start button").click()
    await expect(receiver.locator(".facts .badge").first).to_contain_text("En cours")
    complete = receiver.locator("form.action-complete")
    await complete.locator("select").select_option("service_provided")
    await complete.locator("textarea").fill("Vue en consultation, traitement donné.")
    await complete.locator("button").click()
    await expect(receiver.locator(".facts .badge").first).to_contain_text("Terminé")

    # The person's data only on an explicit click.
    await expect(receiver.get_by_text("Aminata")).to_have_count(0)
    await receiver.get_by_role("button", name="Afficher les données personnelles").click()
    await expect(receiver.locator("dl.payload")).to_contain_text("Aminata")
    await screenshot(receiver, "referral-received")

    # The sender learns the outcome.
    await sender.goto(referral_url)
    await reload_until(sender, ".facts .badge", "Terminé")
    await expect(sender.locator("ol.history")).to_contain_text("Service fourni")
    await screenshot(sender, "referral-sent-phone")

    # The coordinator sees the flow counted, and the overdue list.
    coordinator = await open_page(contexts, browser)
    await log_in(coordinator, creds, "hub", "coordinator")
    await coordinator.goto(url_of(creds, "hub", "/network"))
    await reload_until(coordinator, "#flows", "Association Sanad")
    await expect(coordinator.locator("#flows")).to_contain_text(
        "Centre de santé communautaire Amal"
    )
    await expect(coordinator.locator("#overdue")).to_contain_text(
        "Centre de santé communautaire Amal"
    )
    await screenshot(coordinator, "network")
