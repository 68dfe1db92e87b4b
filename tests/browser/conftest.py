"""Pages in a real browser: Playwright (from PyPI) driving the system's Chromium
(``/usr/bin/chromium``, installed by ``.ci/run`` with apt; never Playwright's own download),
against the real nodes of ``running_network``.

Each main page is saved as a screenshot in ``.relais/screenshots/`` (git-ignored) for review.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.e2e.conftest import user

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".relais" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("the browser tests need Debian's chromium: apt-get install -y chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    """Fresh browser profiles (cookies, language) for a test; closed at its end."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        await context.close()


async def open_page(
    contexts: list[BrowserContext], browser: Browser, *, phone: bool = False
) -> Page:
    context = await browser.new_context(
        viewport=PHONE if phone else DESKTOP, locale="fr-FR", is_mobile=phone, has_touch=phone
    )
    contexts.append(context)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return page


async def log_in(page: Page, creds: dict[str, Any], node: str, role: str) -> None:
    account = user(creds, node, role)
    await page.goto(creds["nodes"][node]["url"] + "/login")
    await page.get_by_label("Nom d'utilisateur").fill(account["username"])
    await page.get_by_label("Mot de passe").fill(account["password"])
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Bienvenue")


async def screenshot(page: Page, name: str) -> None:
    os.makedirs(SCREENSHOTS, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def url_of(creds: dict[str, Any], node: str, path: str) -> str:
    return str(creds["nodes"][node]["url"]) + path


def pattern(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))
