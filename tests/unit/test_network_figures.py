"""The coordinator's figures tell the truth: 0 is 0, a suppressed small count ("<5") is said
and drawn as "fewer than 5", never as a number, a count hidden to protect it ("x") is said
as hidden and drawn hatched, and a month's total is the API's own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from services.dashboard import network_pages
from services.dashboard.network_pages import figure, scale, width
from services.dashboard.rendering import TEMPLATES
from shared import i18n

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
NAMES: dict[str, dict[str, str]] = {
    "org": {"amal": "Amal", "nour": "Nour"},
    "category": {"legal_aid": "Aide juridique", "primary_health": "Soins de santé primaires"},
}


class Answers:
    """The audit API's answers, by path and grouping (what the page asks, and nothing else)."""

    def __init__(self, answers: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]]) -> None:
        self.answers = answers

    async def call(self, method: str, path: str, *, params: httpx.QueryParams) -> Any:
        assert method == "GET"
        return self.answers[(path.rsplit("/figures/", 1)[1], tuple(params.get_list("by")))]


class TestAFigure:
    def test_zero_is_zero_and_draws_no_bar(self) -> None:
        zero = figure(0, "fr")
        assert (zero.text, zero.amount, zero.suppressed) == ("0", 0, False)
        assert width(zero, 12) == 0

    def test_a_suppressed_count_is_said_not_made_up(self) -> None:
        few = figure("<5", "fr")
        assert few.suppressed and few.amount is None
        assert few.text == "<5" and few.spoken == "moins de 5"
        assert figure("<5", "ar").spoken == "أقل من 5"

    def test_a_suppressed_bar_reaches_as_far_as_it_might(self) -> None:
        few = figure("<5", "en")
        assert scale([few, figure(0, "en")]) == 4  # the most it can be
        assert width(few, 20) == width(figure(4, "en"), 20)

    def test_a_count_hidden_to_protect_a_small_one_is_said_as_hidden_not_as_a_number(
        self,
    ) -> None:
        hidden = figure("x", "fr")
        assert hidden.suppressed and hidden.hidden and hidden.amount is None
        assert hidden.text == "x"
        assert hidden.spoken == "masqué, pour qu'un petit nombre ne puisse pas se déduire du total"
        assert figure("x", "ar").spoken == "مخفي، حتى لا يمكن استنتاج عدد صغير من المجموع"
        assert not figure("<5", "fr").hidden

    def test_a_hidden_bar_starts_where_a_shown_count_may_start(self) -> None:
        hidden = figure("x", "en")
        assert scale([hidden, figure("<5", "en")]) == 5  # the least a hidden count is
        assert width(hidden, 20) == width(figure(5, "en"), 20)

    def test_the_page_says_fewer_than_five_to_a_screen_reader(self) -> None:
        macros = i18n.environment(TEMPLATES, "fr").get_template("_macros.html").module
        html = str(macros.figure(figure("<5", "fr")))  # type: ignore[attr-defined]
        assert '<span aria-hidden="true">&lt;5</span>' in html
        assert '<span class="visually-hidden">moins de 5</span>' in html
        assert str(macros.figure(figure(0, "fr"))) == '<span class="figure">0</span>'  # type: ignore[attr-defined]


class TestOverdue:
    async def test_nothing_overdue_draws_no_red_bar(self) -> None:
        api = Answers(
            {
                ("overdue", ()): [
                    {"org": "amal", "referrals": 7, "overdue": 0, "overdue_rate": 0.0},
                    {"org": "nour", "referrals": "<5", "overdue": 0, "overdue_rate": None},
                ],
                ("response-times", ("to_org",)): [],
            }
        )
        rows = await network_pages._overdue(api, NAMES, "fr", since=SINCE)  # type: ignore[arg-type]
        assert rows is not None
        assert [(r["org"], r["overdue"].text, r["width"]) for r in rows] == [
            ("amal", "0", 0),
            ("nour", "0", 0),
        ]
        assert rows[1]["referrals"].spoken == "moins de 5"

    async def test_a_suppressed_overdue_count_is_hatched_not_a_full_bar(self) -> None:
        api = Answers(
            {
                ("overdue", ()): [
                    {"org": "amal", "referrals": 20, "overdue": 8, "overdue_rate": 0.4},
                    {"org": "nour", "referrals": 9, "overdue": "<5", "overdue_rate": None},
                ],
                ("response-times", ("to_org",)): [],
            }
        )
        rows = await network_pages._overdue(api, NAMES, "fr", since=SINCE)  # type: ignore[arg-type]
        assert rows is not None
        amal, nour = rows
        assert amal["width"] == 100
        assert nour["overdue"].suppressed and nour["width"] == 50  # up to 4 of 8


class TestVolumes:
    async def test_a_months_total_is_the_apis_not_a_sum_of_visible_cells(self) -> None:
        api = Answers(
            {
                ("referrals", ("month", "category")): [
                    {"month": "2026-11", "category": "legal_aid", "referrals": "x"},
                    {"month": "2026-11", "category": "primary_health", "referrals": "<5"},
                    {"month": "2026-12", "category": "legal_aid", "referrals": "<5"},
                ],
                ("referrals", ("month",)): [
                    {"month": "2026-11", "referrals": 11},
                    {"month": "2026-12", "referrals": "<5"},
                ],
            }
        )
        months = await network_pages._volumes(api, NAMES, "fr", since=SINCE)  # type: ignore[arg-type]
        assert months is not None
        november, december = months
        assert november["total"].text == "11" and november["width"] == 100
        assert [(n, f.text) for n, f in november["by_category"]] == [
            ("Aide juridique", "x"),
            ("Soins de santé primaires", "<5"),
        ]
        assert december["total"].suppressed and december["total"].spoken == "moins de 5"


class TestFlows:
    async def test_a_suppressed_cell_is_hatched_and_an_empty_one_is_zero(self) -> None:
        api = Answers(
            {
                ("referrals", ("from_org", "to_org")): [
                    {"from_org": "amal", "to_org": "nour", "referrals": 12},
                    {"from_org": "nour", "to_org": "amal", "referrals": "<5"},
                    {"from_org": "nour", "to_org": "nour", "referrals": "x"},
                ]
            }
        )
        flows = await network_pages._flows(api, NAMES, "fr", since=SINCE)  # type: ignore[arg-type]
        assert flows is not None
        cells = {
            row["name"]: [(c["value"].text, c["heat"]) for c in row["cells"]]
            for row in flows["rows"]
        }
        assert cells == {
            "Amal": [("0", "0"), ("12", "4")],
            "Nour": [("<5", "suppressed"), ("x", "suppressed")],
        }
