"""Secondary suppression: which counts of a table the figures hide so that no small count can
be worked out from the others.

A count from 1 to 4 is hidden as "<5" (primary suppression, ``domain.shown``). That alone is
not enough: where a row's total is shown beside it, the total minus the shown cells gives the
hidden one back. So, as statistical agencies do, a second cell of that row (or column) is
hidden too, marked "x" (hidden so that a small count cannot be worked out); where no cell can
serve, the total is hidden. Hiding a partner can leave its column with one hidden cell, so the
rule runs again over every row and column (and over the totals' own row and column against
the grand total) until nothing changes.

What counts as "worked out": a reader knows a "<5" is from 1 to 4, and, knowing these rules,
that an "x" is at least 5 (a partner is always a count that was shown, so 5 or more; see
zeros below). A line (row or column) with a shown total is exposed when, with those bounds,
the total leaves one of its hidden cells a single possible value: one hidden cell alone, or
"<5" and "<5" summing to 8 (both 4), or "<5" and "x" summing to 6 (1 and 5). The partner
chosen is the smallest other count of the line that leaves every hidden cell of the line at
least two values (the smallest that loses least information), else the smallest there is.

Zeros. A 0 is exact and points at nobody, so it needs no protection and is shown as 0. It is
never a partner: hiding a true 0 protects nothing, since a reader often knows it from
elsewhere (an organisation that offers no such service received none), and the "x" would
then claim "5 or more" for an empty cell. A line whose only other cells are zeros has its
total equal to its one hidden cell, so that total is itself under 5 and hidden already.

Tables that share margins. Each table is protected against its own totals, which the API
also publishes as counts of their own (``by=a&by=b`` has the margins ``by=a``, ``by=b`` and
the total of everything). A total the last-resort rule hides must then be hidden where it is
published too: the API's one-dimension lists take the totals their two-dimension tables hid
(``hidden=``), and its total of everything those of the lists (services/audit/queries.py).
Not done: tables of three dimensions or more do not feed their margins back, and two tables
sharing a margin are not protected jointly (a reader solving several tables' equations at
once can narrow a hidden count more than any one line allows).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from services.audit.domain import SMALL_COUNT

SMALL = f"<{SMALL_COUNT}"
HIDDEN = "x"
UNBOUNDED = 10**18  # no upper bound a reader knows for an "x"


class Mark(StrEnum):
    SHOWN = "shown"
    SMALL = "small"  # 1 to 4, shown as "<5"
    HIDDEN = "hidden"  # shown as "x": hidden to protect a small count


Id = tuple[Any, ...]  # ("cell", row, column), ("row", row), ("column", column), ("grand",)


@dataclass(frozen=True)
class Line:
    cells: tuple[Id, ...]
    total: Id


@dataclass
class Protected:
    """Every count of the table and its mark: cells by (row, column), totals by row and column,
    and the grand total."""

    values: dict[Id, int]
    marks: dict[Id, Mark]
    lines: list[Line] = field(default_factory=list)

    def cell(self, row: Hashable, column: Hashable) -> int | str:
        return self.shown(("cell", row, column))

    def row_total(self, row: Hashable) -> int | str:
        return self.shown(("row", row))

    def column_total(self, column: Hashable) -> int | str:
        return self.shown(("column", column))

    def grand_total(self) -> int | str:
        return self.shown(("grand",))

    def shown(self, key: Id) -> int | str:
        mark = self.marks[key]
        if mark is Mark.SMALL:
            return SMALL
        if mark is Mark.HIDDEN:
            return HIDDEN
        return self.values[key]


def primary(count: int) -> Mark:
    return Mark.SMALL if 0 < count < SMALL_COUNT else Mark.SHOWN


def protect(
    counts: Mapping[tuple[Any, Any], int],
    *,
    rows: Sequence[Hashable] | None = None,
    columns: Sequence[Hashable] | None = None,
    row_totals: bool = True,
    column_totals: bool = True,
    grand_total: bool = True,
    hidden: Iterable[Id] = (),
) -> Protected:
    """The table of ``counts`` by (row, column) (a cell not listed is 0), with the totals a
    reader can see (the row totals, the column totals, the grand total: each flag says whether
    that margin is published), protected by the rules above. ``hidden``: counts that must be
    hidden whatever this table needs (a more detailed table had to hide them)."""
    rows = list(rows if rows is not None else dict.fromkeys(r for r, _ in counts))
    columns = list(columns if columns is not None else dict.fromkeys(c for _, c in counts))
    values: dict[Id, int] = {}
    for r in rows:
        for c in columns:
            count = counts.get((r, c), 0)
            if count < 0:
                raise ValueError(f"a count cannot be negative: {count} at {(r, c)}")
            values[("cell", r, c)] = count
    for r in rows:
        values[("row", r)] = sum(values[("cell", r, c)] for c in columns)
    for c in columns:
        values[("column", c)] = sum(values[("cell", r, c)] for r in rows)
    values[("grand",)] = sum(values[("row", r)] for r in rows)
    lines: list[Line] = []
    if row_totals:
        lines += [Line(tuple(("cell", r, c) for c in columns), ("row", r)) for r in rows]
    if column_totals:
        lines += [Line(tuple(("cell", r, c) for r in rows), ("column", c)) for c in columns]
    if grand_total and row_totals:
        lines.append(Line(tuple(("row", r) for r in rows), ("grand",)))
    if grand_total and column_totals:
        lines.append(Line(tuple(("column", c) for c in columns), ("grand",)))
    marks = {key: primary(value) for key, value in values.items()}
    for key in hidden:
        if marks.get(key) is Mark.SHOWN and values[key]:  # a small or a 0 stays as it is
            marks[key] = Mark.HIDDEN
    protected = Protected(values, marks, lines)
    _settle(protected, lines)
    return protected


def _bounds(key: Id, protected: Protected) -> tuple[int, int]:
    """What a reader knows of a count from its mark."""
    mark = protected.marks[key]
    if mark is Mark.SMALL:
        return 1, SMALL_COUNT - 1
    if mark is Mark.HIDDEN:
        return SMALL_COUNT, UNBOUNDED
    value = protected.values[key]
    return value, value


def exposed(line: Line, protected: Protected) -> bool:
    """Whether the line's shown total pins one of its hidden cells to a single value."""
    if protected.marks[line.total] is not Mark.SHOWN:
        return False  # a hidden total gives nothing back
    hidden = [k for k in line.cells if protected.marks[k] is not Mark.SHOWN]
    if not hidden:
        return False
    rest = protected.values[line.total] - sum(
        protected.values[k] for k in line.cells if protected.marks[k] is Mark.SHOWN
    )
    bounds = [_bounds(k, protected) for k in hidden]
    low_sum = sum(lo for lo, _ in bounds)
    high_sum = sum(hi for _, hi in bounds)
    for lo, hi in bounds:
        least = max(lo, rest - (high_sum - hi))
        most = min(hi, rest - (low_sum - lo))
        if most <= least:
            return True
    return False


def _settle(protected: Protected, lines: Iterable[Line]) -> None:
    lines = list(lines)
    while True:
        line = next((li for li in lines if exposed(li, protected)), None)
        if line is None:
            return
        candidates = sorted(
            (k for k in line.cells if protected.marks[k] is Mark.SHOWN and protected.values[k]),
            key=lambda k: protected.values[k],
        )
        choice = next((k for k in candidates if not _exposed_if_hidden(k, line, protected)), None)
        if choice is None and candidates:
            choice = candidates[0]
        # No count left to hide beside it: the total goes (it is at least 5, being shown).
        protected.marks[choice if choice is not None else line.total] = Mark.HIDDEN


def _exposed_if_hidden(key: Id, line: Line, protected: Protected) -> bool:
    protected.marks[key] = Mark.HIDDEN
    try:
        return exposed(line, protected)
    finally:
        protected.marks[key] = Mark.SHOWN


def one_way_table(
    counts: Mapping[Any, int], *, total: bool = True, hidden: Iterable[Any] = ()
) -> Protected:
    """A list of counts (one dimension) as a table of one row, its total the total of
    everything; ``hidden``, the keys that must be hidden whatever."""
    return protect(
        {((), key): n for key, n in counts.items()},
        rows=[()],
        columns=list(counts),
        column_totals=False,
        grand_total=False,
        row_totals=total,
        hidden=[("cell", (), key) for key in hidden],
    )


def one_way(
    counts: Mapping[Any, int], *, total: bool = True, hidden: Iterable[Any] = ()
) -> dict[Hashable, int | str]:
    """A list of counts (one dimension) beside its published total, protected."""
    table = one_way_table(counts, total=total, hidden=hidden)
    return {key: table.cell((), key) for key in counts}


def hidden_margins(table: Protected) -> tuple[set[Any], set[Any], bool]:
    """The row totals, the column totals and whether the grand total the table had to hide
    as its last resort: another query publishing them must hide them too."""
    rows = {k[1] for k, m in table.marks.items() if k[0] == "row" and m is Mark.HIDDEN}
    columns = {k[1] for k, m in table.marks.items() if k[0] == "column" and m is Mark.HIDDEN}
    return rows, columns, table.marks[("grand",)] is Mark.HIDDEN
