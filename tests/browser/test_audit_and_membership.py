"""The secretariat's tools in a real browser: the audit log searched (a referral's record
found by its object, a wrong filter named beside its field) and exported; a node's own log
for its administrator; a member suspended (saying why) and reinstated."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Page, expect

from deploy.demo_network import MEMBERS, record
from shared.contracts.directory import MembershipStatus
from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.browser.test_notifications import send_referral
from tests.e2e.conftest import user

WAIT_S = 45


async def search_until_found(page: Page, within_s: float = WAIT_S) -> None:
    """Search again until the log has the record (it crosses the network first)."""
    for _ in range(int(within_s)):
        if await page.locator("tr.audit-row").count():
            return
        await page.wait_for_timeout(1000)
        await page.get_by_role("button", name="Rechercher").click()
    await expect(page.locator("tr.audit-row").first).to_be_visible()


async def test_the_coordinator_finds_a_referral_in_the_network_log_and_exports_it(
    running_network: dict[str, Any],
    browser: Browser,
    contexts: list[BrowserContext],
    tmp_path: Path,
) -> None:
    creds = running_network
    referral_id = await send_referral(creds, "Fatou")
    page = await open_page(contexts, browser)
    await log_in(page, creds, "hub", "coordinator")
    await page.goto(url_of(creds, "hub", "/audit"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Journal d'audit")

    # A code no service records (an old bookmark) is named beside its field, and kept.
    await page.goto(url_of(creds, "hub", "/audit?log=network&action=referral.nope"))
    await expect(page.locator("#action-error")).to_be_visible()
    await expect(page.locator("#filter-action")).to_have_value("referral.nope")

    await page.locator("#filter-action").select_option("")
    await page.locator("#filter-object").fill(f"referral:{referral_id}")
    await page.get_by_role("button", name="Rechercher").click()
    await search_until_found(page)
    offered = page.locator("tr.audit-row", has=page.locator('td[data-code="referral.offered"]'))
    await expect(offered.locator("td.action")).to_have_text("Orientation proposée (vue par le hub)")
    await expect(offered).to_contain_text("Association Sanad")
    await expect(offered).to_contain_text("Centre de santé communautaire Amal")
    await screenshot(page, "audit-network")

    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="CSV").click()
    download = await waiting.value
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.name.endswith(".csv")
    lines = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert [line["object"] for line in lines] == [f"referral:{referral_id}"] * len(lines)
    assert "referral.offered" in {line["action"] for line in lines}

    # The secretariat's link to a referral (from a notification) leads to the same search.
    await page.goto(url_of(creds, "hub", f"/referrals/{referral_id}"))
    await expect(page.locator("#filter-object")).to_have_value(f"referral:{referral_id}")


async def test_a_nodes_admin_searches_its_own_log(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    page = await open_page(contexts, browser)
    await log_in(page, creds, "sanad", "admin")
    await page.get_by_role("link", name="Journal d'audit").first.click()
    await page.get_by_label("Action", exact=True).select_option(label="Connexion")
    await page.get_by_role("button", name="Rechercher").click()
    row = page.locator("tr.audit-row").first
    await expect(row.locator("td.actor")).to_have_attribute("title", "user:admin")
    await expect(row.locator("td.action")).to_have_text("Connexion")
    await expect(row.locator("td.action")).to_have_attribute("data-code", "session.login")
    await screenshot(page, "audit-own")


async def test_the_coordinator_suspends_a_member_saying_why_and_reinstates_it(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    await publish_member_without_node(creds, "jusoor")
    page = await open_page(contexts, browser)
    await log_in(page, creds, "hub", "coordinator")
    await page.goto(url_of(creds, "hub", "/network"))
    member = page.locator("#member-jusoor")
    await expect(member).to_contain_text("Membre actif")

    await member.get_by_role("button", name="Suspendre").click()
    member = page.locator("#member-jusoor")
    await expect(member.locator("#reason-error")).to_be_visible()
    await member.get_by_label("Motif de la suspension").fill("Cotisation impayée depuis un an.")
    await member.get_by_role("button", name="Suspendre").click()
    await expect(page.locator(".notice")).to_be_visible()
    member = page.locator("#member-jusoor")
    await expect(member).to_contain_text("Suspendue")
    await screenshot(page, "network-suspended")

    await member.get_by_role("button", name="Réintégrer").click()
    await expect(page.locator(".notice")).to_be_visible()
    await expect(page.locator("#member-jusoor")).to_contain_text("Membre actif")


async def publish_member_without_node(creds: dict[str, Any], org_id: str) -> None:
    """A demo organisation with no node in the test network, admitted at the hub: one to
    suspend without disturbing the others' referrals."""
    token = user(creds, "hub", "coordinator")["token"]
    org = next(o for o in MEMBERS if o.org_id == org_id)
    wanted = record(org, version=1, node_url="http://127.0.0.1:9", keys=[]).model_copy(
        update={"status": MembershipStatus.APPLICANT}
    )
    async with httpx.AsyncClient(
        base_url=url_of(creds, "hub", ""), headers={"Authorization": f"Bearer {token}"}
    ) as client:
        path = f"/api/v1/directory/organisations/{org_id}"
        if (await client.get(path)).status_code == 200:
            return
        (await client.put(path, json=wanted.model_dump(mode="json"))).raise_for_status()
        admitted = await client.post(f"{path}/membership", json={"action": "admit"})
        admitted.raise_for_status()
