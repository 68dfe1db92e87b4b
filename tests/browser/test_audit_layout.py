"""The audit results' layout on a phone, in Chromium, without a network: the page's own
template and stylesheet with long labels and ids, in French, Arabic and English. No word is
drawn on two lines, no cell is wider than its box, the page does not scroll sideways."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from services.dashboard import audit_pages
from services.dashboard.rendering import TEMPLATES
from shared import i18n
from shared.contracts.audit import Outcome
from shared.contracts.audit_actions import outcome_label
from tests.browser.conftest import PHONE
from tests.browser.test_audit_search import BROKEN_WORDS

CSS = Path(audit_pages.__file__).parent / "static" / "dashboard.css"
# The longest labels and codes the log holds.
ROWS = [
    ("user:focal_point_sanad", "referral.closed_unresolved_late", "refused"),
    ("system:referrals", "referral.refused_by_recipient", "failed"),
    ("token:3f9a2c1b7d", "organisation.change_requested", "ok"),
    ("system:directory", "referral.key_destroyed_confirmed", "ok"),
    ("user:admin", "dead_letter.redelivered", "ok"),
]
OBJECT = "referral:3f2b8c1e-6a0d-4e57-9b1f-0c8d2e7a5b44"


def rendered(lang: str) -> str:
    gettext = i18n.translations(lang).gettext
    rows = [
        audit_pages._row(
            {
                "seq": 1000 + i,
                "at": "2026-12-02T10:00:00+00:00",
                "actor": actor,
                "actor_org": "sanad",
                "action": action,
                "object": OBJECT,
                "outcome": outcome,
            },
            {"sanad": "Association Sanad"},
            lang,
        )
        for i, (actor, action, outcome) in enumerate(ROWS)
    ]
    html = (
        i18n.environment(TEMPLATES, lang)
        .get_template("audit.html")
        .render(
            node_id="sanad",
            node_org="sanad",
            is_hub=False,
            here="/audit",
            languages=[],
            nav=[],
            session_csrf=None,
            lang=lang,
            text_direction=i18n.direction(lang),
            principal=None,
            log="own",
            logs=[("own", "own")],
            typed=dict.fromkeys(audit_pages.FILTERS, ""),
            errors={},
            rows=rows,
            zone="UTC+1",
            next_page=None,
            first_page=None,
            exports=None,
            organisations=[("sanad", "Association Sanad")],
            actions=audit_pages._action_choices("own", gettext),
            actors=audit_pages._actor_choices([actor for actor, _, _ in ROWS], "", gettext),
            outcomes=[(o.value, outcome_label(o.value, gettext)) for o in Outcome],
        )
    )
    return html.replace('href="/static/dashboard.css"', f'href="{CSS.as_uri()}"')


@pytest.mark.parametrize("lang", ["fr", "ar", "en"])
async def test_no_word_of_the_results_is_cut_on_a_phone(
    browser: Browser, tmp_path: Path, lang: str
) -> None:
    page_file = tmp_path / f"audit-{lang}.html"
    page_file.write_text(rendered(lang))
    context = await browser.new_context(viewport=PHONE, is_mobile=True)
    try:
        page = await context.new_page()
        await page.goto(page_file.as_uri())
        assert await page.locator("tr.audit-row").count() == len(ROWS)
        assert await page.evaluate(BROKEN_WORDS) == []
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        style = "getComputedStyle(document.querySelector('td.object')).wordBreak"
        assert await page.evaluate(style) == "normal"
    finally:
        await context.close()
