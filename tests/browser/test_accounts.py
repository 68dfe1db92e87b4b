"""An administrator manages an account in a real browser: its role, a new password and its
sessions; the owner's own browser (a phone) feels each change at its next page."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of

FIRST_PASSWORD = "un-long-mot-de-passe-1"
NEW_PASSWORD = "un-autre-mot-de-passe-2"


async def log_in_as(page: Page, creds: dict[str, Any], username: str, password: str) -> None:
    await page.goto(url_of(creds, "amal", "/login"))
    await page.get_by_label("Nom d'utilisateur").fill(username)
    await page.get_by_label("Mot de passe").fill(password)
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Bienvenue")


async def test_an_admin_changes_a_role_and_a_password_and_the_owner_logs_in_again(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    admin = await open_page(contexts, browser)
    await log_in(admin, running_network, "amal", "admin")
    await admin.goto(url_of(running_network, "amal", "/admin/users"))
    await admin.locator("#username").fill("samira")
    await admin.locator("#new-password").fill(FIRST_PASSWORD)
    await admin.get_by_role("button", name="Ajouter l'utilisateur").click()
    await expect(admin.get_by_role("status")).to_contain_text("Le compte est créé")

    phone = await open_page(contexts, browser, phone=True)
    await log_in_as(phone, running_network, "samira", FIRST_PASSWORD)

    await admin.get_by_role("link", name="Gérer le compte de samira").click()
    await expect(admin.get_by_role("heading", level=1)).to_have_text("Compte de samira")
    await expect(admin.get_by_role("table")).to_have_count(1)  # her one open session
    await admin.get_by_label("Nouveau rôle").select_option("focal_point")
    await admin.get_by_role("button", name="Changer le rôle").click()
    await expect(admin.get_by_role("status")).to_contain_text("Le rôle est changé")
    await expect(admin.locator("#current-role")).to_have_text("Point focal")
    await expect(admin.get_by_text("Aucune session ouverte.")).to_be_visible()
    await screenshot(admin, "account")

    await phone.reload()  # her phone's session ended with the change
    await expect(phone.get_by_role("button", name="Se connecter")).to_be_visible()

    await admin.get_by_label("Nouveau mot de passe", exact=True).fill("court")
    await admin.get_by_role("button", name="Définir le mot de passe").click()
    await expect(admin.locator("#password-error")).to_contain_text("Au moins")
    await admin.get_by_label("Nouveau mot de passe", exact=True).fill(NEW_PASSWORD)
    await admin.get_by_role("button", name="Définir le mot de passe").click()
    await expect(admin.get_by_role("status")).to_contain_text("Le mot de passe est défini")

    await log_in_as(phone, running_network, "samira", NEW_PASSWORD)
    await screenshot(phone, "account-owner-phone")
