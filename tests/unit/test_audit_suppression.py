"""Secondary suppression, rule by rule, and over random tables: no hidden count of the figures
can be worked out from a row's or a column's shown total."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from services.audit import queries, suppression
from services.audit.queries import Dimension
from services.audit.suppression import HIDDEN, SMALL, Mark, exposed, one_way, protect


def grid(table: suppression.Protected, rows: list[str], columns: list[str]) -> list[list[object]]:
    return [[table.cell(r, c) for c in columns] for r in rows]


class TestRules:
    def test_a_lone_small_cell_in_a_row_gets_the_smallest_other_cell_as_partner(self) -> None:
        table = protect({("m", "a"): 3, ("m", "b"): 7, ("m", "c"): 20}, column_totals=False)
        assert grid(table, ["m"], ["a", "b", "c"]) == [[SMALL, HIDDEN, 20]]
        assert table.row_total("m") == 30  # the total stays: 30 - 20 leaves 10 = <5 + x

    def test_without_the_rule_the_small_cell_would_come_back_by_subtraction(self) -> None:
        table = protect({("m", "a"): 3, ("m", "b"): 7, ("m", "c"): 20}, column_totals=False)
        table.marks[("cell", "m", "b")] = Mark.SHOWN  # undo the partner
        assert exposed(table.lines[0], table)  # 30 - 7 - 20 = 3: the reader has it

    def test_a_partner_that_would_pin_the_small_cell_is_passed_over(self) -> None:
        # 1 and 5 hidden beside a total of 26: "<5" + "x" = 6, with x >= 5, gives 1 back.
        table = protect(
            {("m", "a"): 1, ("m", "b"): 5, ("m", "c"): 6, ("m", "d"): 14}, column_totals=False
        )
        assert grid(table, ["m"], ["a", "b", "c", "d"]) == [[SMALL, 5, HIDDEN, 14]]

    def test_two_small_cells_that_sum_to_eight_are_both_four_so_one_more_goes(self) -> None:
        table = protect({("m", "a"): 4, ("m", "b"): 4, ("m", "c"): 9}, column_totals=False)
        assert grid(table, ["m"], ["a", "b", "c"]) == [[SMALL, SMALL, HIDDEN]]

    def test_two_small_cells_with_room_between_need_no_partner(self) -> None:
        table = protect({("m", "a"): 2, ("m", "b"): 3, ("m", "c"): 9}, column_totals=False)
        assert grid(table, ["m"], ["a", "b", "c"]) == [[SMALL, SMALL, 9]]

    def test_a_row_with_every_cell_hidden_and_no_room_loses_its_total(self) -> None:
        # 4 + 4 = 8: every cell is already hidden, no other count can serve: the total goes.
        table = protect({("m", "a"): 4, ("m", "b"): 4}, column_totals=False)
        assert grid(table, ["m"], ["a", "b"]) == [[SMALL, SMALL]]
        assert table.row_total("m") == HIDDEN

    def test_a_partner_that_breaks_its_column_gets_a_partner_there_too(self) -> None:
        counts = {
            ("jan", "health"): 2, ("jan", "legal"): 9, ("jan", "shelter"): 30,
            ("feb", "health"): 12, ("feb", "legal"): 11, ("feb", "shelter"): 40,
        }  # fmt: skip
        table = protect(counts)
        rows, columns = ["jan", "feb"], ["health", "legal", "shelter"]
        # jan's 2 takes legal's 9 as partner; health's column (2 beside 12, total 14) then
        # takes feb's 12; feb's row, with 12 alone hidden, takes its smallest other, 11,
        # which also covers legal's column (9 beside 11).
        assert grid(table, rows, columns) == [[SMALL, HIDDEN, 30], [HIDDEN, HIDDEN, 40]]
        for line in table.lines:
            assert not exposed(line, table)

    def test_a_small_column_total_is_protected_against_the_grand_total(self) -> None:
        counts = {("a", "x"): 3, ("b", "y"): 10, ("b", "z"): 11}
        table = protect(counts)
        assert table.column_total("x") == SMALL
        assert table.grand_total() == 24
        hidden = [c for c in ("y", "z") if table.column_total(c) == HIDDEN]
        assert len(hidden) >= 1  # or else 24 - 10 - 11 = 3

    def test_a_zero_needs_no_protection_and_is_never_a_partner(self) -> None:
        table = protect(
            {("m", "a"): 3, ("m", "b"): 0, ("m", "c"): 0, ("m", "d"): 8}, column_totals=False
        )
        assert grid(table, ["m"], ["a", "b", "c", "d"]) == [[SMALL, 0, 0, HIDDEN]]

    def test_a_small_cell_beside_only_zeros_has_a_small_total_already(self) -> None:
        table = protect({("m", "a"): 3, ("m", "b"): 0}, column_totals=False)
        assert grid(table, ["m"], ["a", "b"]) == [[SMALL, 0]]
        assert table.row_total("m") == SMALL

    def test_nothing_small_nothing_hidden(self) -> None:
        table = protect({("m", "a"): 0, ("m", "b"): 5, ("n", "a"): 7, ("n", "b"): 9})
        assert grid(table, ["m", "n"], ["a", "b"]) == [[0, 5], [7, 9]]

    def test_a_one_way_list_is_protected_against_its_total(self) -> None:
        assert one_way({"2026-10": 3, "2026-11": 11, "2026-12": 20}) == {
            "2026-10": SMALL, "2026-11": HIDDEN, "2026-12": 20,
        }  # fmt: skip
        assert one_way({"2026-10": 3, "2026-11": 11}, total=False) == {
            "2026-10": SMALL, "2026-11": 11,
        }  # fmt: skip


def recoverable(table: suppression.Protected) -> list[suppression.Line]:
    """The lines where a hidden cell is alone beside a shown total."""
    return [
        line
        for line in table.lines
        if table.marks[line.total] is Mark.SHOWN
        and sum(table.marks[k] is not Mark.SHOWN for k in line.cells) == 1
    ]


def pinned_cells(table: suppression.Protected) -> list[tuple[object, int]]:
    """Brute force: every hidden cell whose value is the only one consistent with what a
    reader sees in some line (each "<5" from 1 to 4, each "x" at least 5)."""
    found: list[tuple[object, int]] = []
    for line in table.lines:
        if table.marks[line.total] is not Mark.SHOWN:
            continue
        hidden = [k for k in line.cells if table.marks[k] is not Mark.SHOWN]
        if not hidden:
            continue
        rest = table.values[line.total] - sum(
            table.values[k] for k in line.cells if table.marks[k] is Mark.SHOWN
        )
        for key in hidden:
            others = [k for k in hidden if k != key]
            lo_others = sum(1 if table.marks[k] is Mark.SMALL else 5 for k in others)
            hi_others = sum(4 if table.marks[k] is Mark.SMALL else rest for k in others)
            lo, hi = (1, 4) if table.marks[key] is Mark.SMALL else (5, rest)
            possible = [v for v in range(lo, hi + 1) if lo_others <= rest - v <= hi_others]
            if len(possible) <= 1:
                found.append((key, table.values[key]))
    return found


def test_random_tables_never_leave_a_hidden_count_alone_or_pinned() -> None:
    generator = random.Random(14)
    for _ in range(1500):
        rows = [f"r{i}" for i in range(generator.randint(1, 5))]
        columns = [f"c{j}" for j in range(generator.randint(1, 5))]
        counts = {
            (r, c): generator.choice([0, 0, 1, 2, 3, 4, 5, 6, generator.randint(5, 60)])
            for r in rows
            for c in columns
        }
        table = protect(counts, rows=rows, columns=columns)
        assert recoverable(table) == [], counts
        assert pinned_cells(table) == [], counts
        for key, value in table.values.items():  # the marks never lie about a count
            mark = table.marks[key]
            assert (mark is Mark.SMALL) == (0 < value < 5), (key, value)
            assert mark is not Mark.HIDDEN or value >= 5, (key, value)
            assert table.shown(key) == (value if mark is Mark.SHOWN else table.shown(key))


def test_random_tables_hide_nothing_without_a_small_count() -> None:
    generator = random.Random(41)
    for _ in range(300):
        counts = {
            (r, c): generator.choice([0, generator.randint(5, 90)])
            for r in range(4)
            for c in range(3)
        }
        table = protect(counts)
        assert all(mark is Mark.SHOWN for mark in table.marks.values()), counts


class TestTheApisTables:
    """How the figures' query rows become a protected table (services/audit/queries.py)."""

    def test_one_dimension_is_a_list_beside_the_grand_total(self) -> None:
        rows = [{"category": "legal_aid", "n": 7}, {"category": "primary_health", "n": 3}]
        assert queries.protected_counts([Dimension.CATEGORY], rows) == [HIDDEN, SMALL]

    def test_two_dimensions_are_a_table_with_both_margins(self) -> None:
        rows = [
            {"month": "2026-10", "category": "legal_aid", "n": 9},
            {"month": "2026-10", "category": "shelter", "n": 30},
            {"month": "2026-11", "category": "legal_aid", "n": 2},
            {"month": "2026-11", "category": "shelter", "n": 12},
        ]  # the month's totals (39, 14) and the categories' (11, 42) are published
        shown = queries.protected_counts([Dimension.MONTH, Dimension.CATEGORY], rows)
        assert shown == [HIDDEN, HIDDEN, SMALL, HIDDEN]

    def test_no_dimension_is_the_grand_total_alone(self) -> None:
        assert queries.protected_counts([], [{"n": 3}]) == [SMALL]
        assert queries.protected_counts([], [{"n": 0}]) == [0]

    def test_a_month_is_grouped_by_its_starts_in_the_nodes_zone(self) -> None:
        # 23:30 UTC on 31 October 2026 is already November in Casablanca (UTC+1).
        months = queries.Months.spanning(
            datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
            datetime(2026, 12, 1, 9, tzinfo=UTC),
            "Africa/Casablanca",
        )
        assert months.labels == ["2026-11", "2026-12"]
        assert months.starts == [
            datetime(2026, 10, 31, 23, tzinfo=UTC),
            datetime(2026, 11, 30, 23, tzinfo=UTC),
            datetime(2026, 12, 31, 23, tzinfo=UTC),
        ]
        args: list[object] = []
        keys = queries._keys([Dimension.CATEGORY, Dimension.MONTH], args, months)
        assert keys == [
            "category AS category",
            "($1::text[])[width_bucket(created_at, $2::timestamptz[])] AS month",
        ]
        assert args == [months.labels, months.starts]

    def test_a_month_of_ramadan_starts_at_midnight_utc_in_casablanca(self) -> None:
        # Morocco's clocks go back to UTC+0 for Ramadan (mid-February to March 2026).
        months = queries.Months.spanning(
            datetime(2026, 3, 1, 12, tzinfo=UTC),
            datetime(2026, 3, 2, tzinfo=UTC),
            "Africa/Casablanca",
        )
        assert months.starts[0] == datetime(2026, 3, 1, tzinfo=UTC)

    def test_no_referral_has_no_month(self) -> None:
        assert queries.Months.spanning(None, None, "Africa/Casablanca") == queries.Months([], [])


class TestSharedMargins:
    def test_a_total_hidden_as_the_last_resort_is_reported_for_where_it_is_published(
        self,
    ) -> None:
        table = protect({("amal", "legal"): 4, ("amal", "health"): 4, ("nour", "legal"): 10})
        rows, _, grand = suppression.hidden_margins(table)
        assert "amal" in rows and not grand

    def test_a_list_hides_what_a_table_had_to_and_protects_it_in_turn(self) -> None:
        assert one_way({"amal": 8, "nour": 10}) == {"amal": 8, "nour": 10}
        assert one_way({"amal": 8, "nour": 10}, hidden={"amal"}) == {"amal": HIDDEN, "nour": HIDDEN}

    def test_a_small_count_or_a_zero_is_never_turned_into_an_x(self) -> None:
        assert one_way({"a": 3, "b": 0, "c": 9}, hidden={"a", "b"}) == {
            "a": SMALL, "b": 0, "c": HIDDEN,
        }  # fmt: skip
