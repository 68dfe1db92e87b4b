"""The conversation on a referral's page, in a real browser: the sender's case worker writes
on a phone in French (an empty message is refused beside the field), the receiving focal
point reads it in Arabic, right to left, and answers; the sender's outbox shows the answer
unread until it is read."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.browser.test_referral_round_trip import reload_until
from tests.e2e.conftest import client
from tests.e2e.test_referrals import reaches, send


async def test_a_thread_is_written_and_read_on_the_referral_page_in_each_language(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    referral_id = await send(creds)
    async with client(creds, "amal", "focal_point") as amal:
        await reaches(amal, referral_id, "received", "the envelope lands at amal")
    tag = uuid.uuid4().hex[:6]

    sender = await open_page(contexts, browser, phone=True)
    await log_in(sender, creds, "sanad", "caseworker")
    await sender.goto(url_of(creds, "sanad", f"/referrals/{referral_id}"))
    conversation = sender.locator("#conversation")
    await expect(conversation).to_contain_text("Aucun message pour l'instant.")
    await sender.get_by_role("button", name="Envoyer le message").click()
    await expect(sender.locator("#text-error")).to_contain_text("Écrivez d'abord votre message.")
    question = f"Bonjour, a-t-elle son récépissé ? {tag}"
    await sender.get_by_label("Votre message").fill(question)
    await sender.get_by_role("button", name="Envoyer le message").click()
    await expect(sender.locator("p.notice")).to_contain_text("Message envoyé")
    mine = sender.locator("li.message.mine")
    await expect(mine).to_contain_text(question)
    await expect(mine).to_contain_text("Chargé(e) de dossiers")
    await screenshot(sender, "conversation-phone")

    receiver = await open_page(contexts, browser)
    await log_in(receiver, creds, "amal", "focal_point")
    await receiver.goto(url_of(creds, "amal", f"/lang/ar?next=/referrals/{referral_id}"))
    await expect(receiver.locator("html")).to_have_attribute("dir", "rtl")
    await reload_until(receiver, "#conversation", question)
    await expect(receiver.locator("#conversation-title")).to_contain_text("المحادثة")
    await receiver.get_by_label("رسالتكم").fill(f"نعم، لديها الوصل {tag}")
    await receiver.get_by_role("button", name="إرسال الرسالة").click()
    await expect(receiver.locator("li.message.mine")).to_contain_text(f"نعم، لديها الوصل {tag}")
    await screenshot(receiver, "conversation-ar")

    await sender.goto(url_of(creds, "sanad", "/referrals?box=outbox"))
    await reload_until(sender, f'tr:has(a[href="/referrals/{referral_id}"])', "Messages non lus")
    await sender.goto(url_of(creds, "sanad", f"/referrals/{referral_id}"))
    await expect(sender.locator("li.message:not(.mine)")).to_contain_text(f"الوصل {tag}")
    await sender.goto(url_of(creds, "sanad", "/referrals?box=outbox"))
    row = sender.locator(f'tr:has(a[href="/referrals/{referral_id}"])')
    await expect(row).not_to_contain_text("Messages non lus")
