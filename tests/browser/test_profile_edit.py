"""An organisation edits its own record on its profile page, in a real browser: a mistake is
said beside its field with what was typed kept; the corrected record, signed by the node,
reaches the hub and another node's replica (its page too); and a change the directory refuses
is said in words."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.e2e.conftest import client
from tests.waiting import eventually

SERVICE = "ecoute_psychosociale"
SEND = "Envoyer la nouvelle fiche au hub"


async def _service_row(page: Page) -> str:
    """The form's row number of amal's psychosocial service (``services.N.…``)."""
    hidden = page.locator(f'input[type="hidden"][value="{SERVICE}"]')
    name = await hidden.get_attribute("name")
    assert name is not None
    return name.split(".")[1]


async def _amal_service(creds: dict[str, Any], node: str, role: str) -> dict[str, Any]:
    async with client(creds, node, role) as api:
        record = (await api.get("/api/v1/directory/organisations/amal")).json()
    return dict(next(s for s in record["services"] if s["service_id"] == SERVICE))


async def test_an_edited_profile_reaches_the_hub_and_another_nodes_replica(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "amal", "focal_point")
    await page.goto(url_of(running_network, "amal", "/organisation"))
    await page.get_by_role("link", name="Modifier la fiche de l'organisation").click()
    row = await _service_row(page)
    hours = f"Lundi-samedi 8h-18h, {secrets.token_hex(3)}"

    # A mistake: said beside its field, in French, and nothing typed is lost.
    await page.locator("#website").fill("javascript:alert(1)")
    await page.locator(f"#services-{row}-hours").fill(hours)
    await page.locator("#name-en").fill("Amal Association, Oujda")
    await page.get_by_role("button", name=SEND).click()
    await expect(page.locator("#website-error")).to_contain_text("https://")
    await expect(page.locator("#website")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#website")).to_have_value("javascript:alert(1)")
    await expect(page.locator(f"#services-{row}-hours")).to_have_value(hours)
    await expect(page.locator("#name-en")).to_have_value("Amal Association, Oujda")
    await screenshot(page, "organisation-edit-error")

    # Corrected, with a new language for the service: signed and sent to the hub.
    await page.locator("#website").fill("https://amal.example.org")
    await page.locator(f'#services-{row}-languages input[value="lin"]').check()
    await page.get_by_role("button", name=SEND).click()
    await expect(page.locator(".notice")).to_contain_text("le hub vérifie la nouvelle fiche")

    async def arrived(node: str, role: str) -> bool:
        offer = await _amal_service(running_network, node, role)
        return bool(offer["hours"] == hours and "lin" in offer["languages"])

    await eventually(lambda: arrived("hub", "coordinator"), within=30, what="the hub publishes it")
    await eventually(lambda: arrived("sanad", "caseworker"), within=30, what="sanad's replica")
    kept = await _amal_service(running_network, "sanad", "caseworker")
    assert kept["capacity"] in ("open", "waitlist", "closed")  # untouched by the form

    # Another node's people read it on amal's page, in their own language.
    other = await open_page(contexts, browser)
    await log_in(other, running_network, "sanad", "caseworker")
    await other.goto(url_of(running_network, "sanad", "/lang/en?next=/directory/amal"))
    section = other.locator("section.service", has=other.locator(f"#service-{SERVICE}"))
    await expect(section.locator(".hours")).to_have_text(hours)
    await expect(section).to_contain_text("Lingala")
    await expect(other.get_by_role("heading", level=1)).to_have_text("Amal Association, Oujda")

    # amal's own page says the hub published its change.
    await page.goto(url_of(running_network, "amal", "/organisation"))
    await expect(page.locator("ul.changes li").first).to_contain_text("publiée")


async def test_a_change_made_on_a_record_that_changed_meanwhile_is_refused_in_words(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    first = await open_page(contexts, browser)
    await log_in(first, running_network, "amal", "admin")
    second = await first.context.new_page()
    for page in (first, second):
        await page.goto(url_of(running_network, "amal", "/organisation/edit"))
    row = await _service_row(first)
    await first.locator(f"#services-{row}-hours").fill("Mardi et jeudi")
    await first.get_by_role("button", name=SEND).click()
    await expect(first.locator(".notice")).to_be_visible()

    # The second form was opened on the version the first change replaced.
    await second.locator(f"#services-{row}-hours").fill("Mercredi")
    await second.get_by_role("button", name=SEND).click()
    stale = "La fiche a changé depuis l'ouverture de ce formulaire"
    if await second.locator("#version-error").count():
        # The node's replica already held the first change: refused before anything is signed.
        await expect(second.locator("#version-error")).to_contain_text(stale)
        await expect(second.locator(f"#services-{row}-hours")).to_have_value("Mercredi")
    else:
        # Sent before the replica caught up: the hub refuses it and the page says why.
        async def refused() -> bool:
            await second.goto(url_of(running_network, "amal", "/organisation"))
            return bool(await second.locator("ul.changes .refusal").count())

        await eventually(refused, within=30, what="the hub's refusal on amal's page")
        await expect(second.locator("ul.changes .refusal").first).to_contain_text(stale)

    async def first_kept() -> bool:
        return bool(
            (await _amal_service(running_network, "amal", "admin"))["hours"] == "Mardi et jeudi"
        )

    await eventually(first_kept, within=30, what="the first change, and only it, published")
    await screenshot(second, "organisation-edit-refused")
