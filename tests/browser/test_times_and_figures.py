"""What a person reads on the pages is true: a deadline's clock is in Moroccan time (the API's
UTC value, converted to Africa/Casablanca), and every figure on the coordinator's /network is
the audit API's own (0 as 0, a suppressed count as "<5" said "fewer than 5", a count hidden
beside it as "x" said as hidden, no row or column of the matrix with a lone hidden cell beside
its total, a month's total as the API counts it)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.e2e.conftest import client

CASABLANCA = ZoneInfo("Africa/Casablanca")
WAIT = 45.0


async def send(creds: dict[str, Any], frm: str, to: str, category: str) -> str:
    payload = {"given_name": "Awa", "family_name": "D.", "need_summary": "Besoin d'aide."}
    async with client(creds, frm, "caseworker") as node:
        response = await node.post(
            "/api/v1/referrals",
            json={
                "to_org": to,
                "category": category,
                "urgency": "priority",
                "legal_basis": "consent",
                "consent": {},
                "payload": payload,
            },
        )
    assert response.status_code == 201, response.text
    return str(response.json()["referral_id"])


async def until_shown(page: Page, selector: str) -> None:
    """Reload ``page`` until ``selector`` is on it: for what crosses the network."""
    deadline = time.monotonic() + WAIT
    while not await page.locator(selector).count():
        assert time.monotonic() < deadline, f"{selector} never appeared on {page.url}"
        await asyncio.sleep(1)
        await page.reload()


async def test_a_deadline_reads_in_moroccan_time(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    referral_id = await send(creds, "sanad", "amal", "primary_health")
    page = await open_page(contexts, browser)
    await log_in(page, creds, "amal", "focal_point")
    await page.goto(url_of(creds, "amal", "/referrals?box=inbox"))
    row = f'tr[data-referral="{referral_id}"]'
    await until_shown(page, row)

    async with client(creds, "amal", "focal_point") as amal:
        detail = (await amal.get(f"/api/v1/referrals/{referral_id}")).json()
    due = datetime.fromisoformat(detail["acknowledge_by"].replace("Z", "+00:00"))
    local = due.astimezone(CASABLANCA)
    expected = local.strftime("%d/%m/%Y %H:%M")

    shown = page.locator(f"{row} .clock time")
    await expect(shown).to_have_text(expected)
    await expect(shown).to_have_attribute("title", "heure du Maroc")
    machine = await shown.get_attribute("datetime")
    assert machine is not None and datetime.fromisoformat(machine) == due  # ISO, with offset
    if local.utcoffset() != timedelta(0):  # out of Ramadan: the UTC clock would be an hour off
        assert expected != due.astimezone(UTC).strftime("%d/%m/%Y %H:%M")

    await page.goto(url_of(creds, "amal", f"/referrals/{referral_id}"))
    await expect(page.locator(".clock time").first).to_have_text(expected)
    await screenshot(page, "referral-moroccan-time")


async def figures(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(f"/api/v1/audit/figures/{path}", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def page_texts(page: Page, selector: str) -> list[str]:
    """The figures in ``selector`` as a reader sees them ("<5" for a suppressed one)."""
    return list(
        await page.locator(f"{selector} .figure").evaluate_all(
            "els => els.map(e => (e.querySelector('[aria-hidden]') || e).textContent.trim())"
        )
    )


async def test_every_figure_on_the_network_page_is_the_apis(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    # Five or more one way (a number), one the other way (suppressed), nothing overdue.
    for _ in range(5):
        await send(creds, "sanad", "amal", "primary_health")
    await send(creds, "amal", "sanad", "legal_aid")
    since = (datetime.now(UTC) - timedelta(days=90)).isoformat()
    async with client(creds, "hub", "coordinator") as hub:
        deadline = time.monotonic() + WAIT
        while True:  # until the hub's audit service has counted them
            flows = await figures(hub, "referrals", by=["from_org", "to_org"], **{"from": since})
            cells = {(r["from_org"], r["to_org"]): r["referrals"] for r in flows}
            if isinstance(cells.get(("sanad", "amal")), int) and ("amal", "sanad") in cells:
                break
            assert time.monotonic() < deadline, f"the hub never counted the referrals: {flows}"
            await asyncio.sleep(1)

        page = await open_page(contexts, browser)
        await log_in(page, creds, "hub", "coordinator")
        await page.goto(url_of(creds, "hub", "/network"))
        await screenshot(page, "network-figures")
        overdue = await figures(hub, "overdue", **{"from": since})
        months = await figures(hub, "referrals", by=["month"])
        margins = {
            side: {
                r[side]: r["referrals"]
                for r in await figures(hub, "referrals", by=[side], **{"from": since})
            }
            for side in ("from_org", "to_org")
        }
        again = await figures(hub, "referrals", by=["from_org", "to_org"], **{"from": since})
    assert again == flows, "the figures moved while the page was read"

    # Overdue, per receiving organisation: the API's counts; no red bar where none is.
    assert overdue, "no organisation received anything"
    for item in overdue:
        row = f'#overdue tr[data-org="{item["org"]}"]'
        assert await page_texts(page, f'{row} [data-figure="referrals"]') == [
            str(item["referrals"])
        ]
        assert await page_texts(page, f'{row} [data-figure="overdue"]') == [str(item["overdue"])]
        if item["overdue"] == 0:
            await expect(page.locator(f"{row} .bar.danger")).to_have_class("bar danger w0")
    assert any(item["overdue"] == 0 for item in overdue)

    # The matrix: every cell the API's, "0" where it lists none, "<5" said in words.
    senders = sorted({r["from_org"] for r in flows})
    receivers = sorted({r["to_org"] for r in flows})
    expected = [str(cells.get((s, r), 0)) for s in senders for r in receivers]
    assert await page_texts(page, "#flows tbody") == expected
    assert "<5" in expected
    suppressed = page.locator("#flows td.heat-suppressed").first
    await expect(suppressed.locator(".visually-hidden")).to_have_text("moins de 5")
    # Secondary suppression: beside a sender's or a receiver's published total, a row or a
    # column of the matrix hides no cell or at least two (else the total minus the shown
    # cells would give a "<5" back); a count hidden for that is said as hidden.
    for side, lines, across in (("from_org", senders, receivers), ("to_org", receivers, senders)):
        for org in lines:
            line = [
                cells.get((org, other) if side == "from_org" else (other, org), 0)
                for other in across
            ]
            hidden = sum(isinstance(v, str) for v in line)
            assert not isinstance(margins[side][org], int) or hidden != 1, (side, org, line)
    if "x" in expected:
        hidden_cell = page.locator("#flows td.heat-suppressed", has_text="x").first
        await expect(hidden_cell.locator(".visually-hidden")).to_have_text(
            "masqué, pour qu'un petit nombre ne puisse pas se déduire du total"
        )

    # Each month's total is the API's total for the month.
    for item in months:
        total = f'li[data-month="{item["month"]}"] > .bar-value'
        assert await page_texts(page, total) == [str(item["referrals"])]
