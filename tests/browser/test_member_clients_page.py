"""The administrator's page of member-system clients, in a real browser on a real node: the
demo's client listed, a new one made with its credentials shown once (and let in by the
node's nats-server), mistakes said beside their field keeping what was typed, a revocation
asked for twice and then cutting the client off, each step in the node's audit log; and on
the hub, no such page in the menu and a page that says why."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.e2e.conftest import client
from tests.e2e.test_member_clients import login_answer, system
from tests.waiting import eventually


async def audited(creds: dict[str, Any], action: str, name: str) -> bool:
    async with client(creds, "sanad", "admin") as admin:
        found = await admin.get(
            "/api/v1/audit/records", params={"action": action, "object": f"client:{name}"}
        )
    assert found.status_code == 200, found.text
    return bool(found.json()["items"])


async def test_an_admin_connects_a_system_sees_it_once_and_revokes_it(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    name = f"suivi_{uuid.uuid4().hex[:8]}"
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "sanad", "admin")
    menu = page.get_by_role("navigation", name="Menu principal")
    await menu.get_by_role("link", name="Systèmes membres").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Systèmes membres connectés par NATS"
    )
    await expect(page.locator('#clients tr[data-client="crm"]')).to_contain_text("Actif")

    # A name that cannot name a NATS subject, and no scope: each said beside its field.
    await page.locator("#client-name").fill("Suivi Dossiers")
    await page.get_by_role("button", name="Créer le client").click()
    await expect(page.locator("#name-error")).to_be_visible()
    await expect(page.locator("#client-name")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#client-name")).to_have_value("Suivi Dossiers")

    await page.locator("#client-name").fill(name)
    await page.locator('input[name="scopes"][value="caseworker"]').check()
    await page.get_by_role("button", name="Créer le client").click()
    shown = page.locator("#new-client")
    await expect(shown).to_contain_text("ne seront plus affichés")
    token = await page.locator("#new-client-token").inner_text()
    seed = await page.locator("#new-client-seed").inner_text()
    assert token.startswith("rls_") and seed.startswith("SU"), (token, seed)
    address = await page.locator("#new-client-address").inner_text()
    assert address == system(running_network, "sanad")["nats"]["url"]
    await expect(page.locator("#new-client-inbox")).to_have_text(f"_INBOX.{name}")
    await screenshot(page, "member-clients-created")

    # The node's nats-server lets the new client in with the seed the page showed.
    async def let_in() -> bool:
        return await login_answer(address, seed) == "PONG"

    await eventually(let_in, within=30, what="the new client let in by sanad's nats-server")

    # Shown once: the list again shows neither the token nor the seed.
    await page.goto(url_of(running_network, "sanad", "/admin/clients"))
    row = page.locator(f'#clients tr[data-client="{name}"]')
    await expect(row).to_contain_text("Chargé(e) de dossiers")
    assert token not in await page.content() and seed not in await page.content()

    # The same name again: refused beside the name.
    await page.locator("#client-name").fill(name)
    await page.locator('input[name="scopes"][value="focal_point"]').check()
    await page.get_by_role("button", name="Créer le client").click()
    await expect(page.locator("#name-error")).to_contain_text("existe déjà")

    # Revoking asks first; cancelling keeps it.
    await page.goto(url_of(running_network, "sanad", "/admin/clients"))
    await row.get_by_role("link", name=f"Révoquer {name}").click()
    confirm = page.locator("#revoke-confirm")
    await expect(confirm).to_contain_text(f"Révoquer le client {name}")
    await confirm.get_by_role("link", name="Annuler").click()
    await expect(row).to_contain_text("Actif")
    await row.get_by_role("link", name=f"Révoquer {name}").click()
    await page.get_by_role("button", name="Révoquer le client").click()
    await expect(page.locator(".notice")).to_contain_text("Le client est révoqué")
    await expect(row).to_contain_text("Révoqué")
    await expect(row.get_by_role("link", name=f"Révoquer {name}")).to_have_count(0)

    async def refused() -> bool:
        return "Authorization Violation" in await login_answer(address, seed)

    await eventually(refused, within=30, what="the revoked client refused by the nats-server")
    for action in ("client.created", "client.revoked"):

        async def recorded(action: str = action) -> bool:
            return await audited(running_network, action, name)

        await eventually(recorded, within=30, what=f"{action} in sanad's audit log")


async def test_the_hub_has_no_member_systems_and_says_why(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    page = await open_page(contexts, browser)
    await log_in(page, running_network, "hub", "admin")
    menu = page.get_by_role("navigation", name="Menu principal")
    await expect(menu.get_by_role("link", name="Systèmes membres")).to_have_count(0)
    await page.goto(url_of(running_network, "hub", "/admin/clients"))
    await expect(page.locator("#no-clients-on-hub")).to_contain_text("propre nœud")
    await expect(page.locator("#client-name")).to_have_count(0)
