"""The audit search as a node's administrator uses it, in a real browser: no code typed by
hand (the actor, the action and the outcome are picked by their names, in French and in
Arabic), the record found shows its action and outcome in the page's language with the code
kept in its title, and on a phone no word of the results is cut in the middle."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.browser.conftest import log_in, open_page, screenshot, url_of
from tests.browser.test_notifications import send_referral
from tests.e2e.conftest import user

WAIT_S = 45

# For every word of every cell of the results: on how many lines it is drawn (a word cut in
# the middle is drawn on two), and whether any cell is wider than its box.
BROKEN_WORDS = """
() => {
  const broken = [];
  for (const cell of document.querySelectorAll("table.audit tbody th, table.audit tbody td")) {
    if (cell.scrollWidth > cell.clientWidth + 1) broken.push("overflows: " + cell.innerText);
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent;
      for (const match of text.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken;
}
"""


async def search_until_found(
    page: Page, button: str, wanted: Locator | None = None, within_s: float = WAIT_S
) -> None:
    """Search again until the wanted rows (any row, by default) are there: the referrals
    service writes its records through its outbox, so they may take a moment, and the log
    already holds the records of the network's earlier referrals."""
    target = wanted if wanted is not None else page.locator("tr.audit-row")
    for _ in range(int(within_s)):
        if await target.count():
            return
        await page.wait_for_timeout(1000)
        await page.get_by_role("button", name=button, exact=True).click()
    await expect(target.first).to_be_visible()


async def test_the_admin_picks_actor_action_and_outcome_by_name_in_french_and_arabic(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    referral_id = await send_referral(creds, "Mariam")
    sender = user(creds, "sanad", "caseworker")["username"]
    page = await open_page(contexts, browser)
    await log_in(page, creds, "sanad", "admin")
    await page.goto(url_of(creds, "sanad", "/audit"))

    # French: every filter is a picker of names; none asks for a code.
    await expect(page.locator("#filter-action")).to_have_js_property("tagName", "SELECT")
    await page.get_by_label("Auteur", exact=True).select_option(label=sender)
    await page.get_by_label("Action", exact=True).select_option(label="Orientation envoyée")
    await page.get_by_label("Résultat", exact=True).select_option(label="Effectué")
    await page.get_by_role("button", name="Rechercher", exact=True).click()
    row = page.locator("tr.audit-row", has=page.locator(f'a[href*="{referral_id}"]'))
    await search_until_found(page, "Rechercher", row)
    await expect(row).to_have_count(1)
    await expect(row.locator("td.action")).to_have_text("Orientation envoyée")
    await expect(row.locator("td.action")).to_have_attribute("title", "referral.sent")
    await expect(row.locator("td.outcome")).to_have_text("Effectué")
    await expect(row.locator("td.actor")).to_contain_text(sender)
    # The pickers keep what was chosen.
    await expect(page.locator("#filter-action")).to_have_value("referral.sent")
    await expect(page.locator("#filter-actor")).to_have_value(f"user:{sender}")

    # Arabic: the same search with the Arabic names, and the results in Arabic.
    await page.goto(url_of(creds, "sanad", "/lang/ar?next=/audit"))
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await page.get_by_label("الفاعل", exact=True).select_option(label=sender)
    await page.get_by_label("الإجراء", exact=True).select_option(label="إرسال الإحالة")
    await page.get_by_label("النتيجة", exact=True).select_option(label="تمّ")
    await page.get_by_role("button", name="بحث", exact=True).click()
    row = page.locator("tr.audit-row", has=page.locator(f'a[href*="{referral_id}"]'))
    await expect(row).to_have_count(1)
    await expect(row.locator("td.action")).to_have_text("إرسال الإحالة")
    await expect(row.locator("td.action")).to_have_attribute("data-code", "referral.sent")
    await expect(row.locator("td.outcome")).to_have_text("تمّ")
    await screenshot(page, "audit-search-ar")

    # Another action of the same actor finds nothing of this referral: the filter is applied.
    await page.get_by_label("الإجراء", exact=True).select_option(
        label="الاطلاع على البيانات الشخصية"
    )
    await page.get_by_role("button", name="بحث", exact=True).click()
    await expect(
        page.locator("tr.audit-row", has=page.locator(f'a[href*="{referral_id}"]'))
    ).to_have_count(0)


async def test_on_a_phone_no_word_of_the_results_is_cut(
    running_network: dict[str, Any], browser: Browser, contexts: list[BrowserContext]
) -> None:
    creds = running_network
    await send_referral(creds, "Aminata")
    for lang, button in (("fr", "Rechercher"), ("ar", "بحث")):
        page = await open_page(contexts, browser, phone=True)
        await log_in(page, creds, "sanad", "admin")
        await page.goto(url_of(creds, "sanad", f"/lang/{lang}?next=/audit"))
        await search_until_found(page, button)
        await expect(page.locator("td.action").first).to_have_css("word-break", "normal")
        assert await page.locator("tr.audit-row").count() >= 5
        assert await page.evaluate(BROKEN_WORDS) == []
        # Nor does the page itself scroll sideways.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await screenshot(page, f"audit-phone-{lang}")
