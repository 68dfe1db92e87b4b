"""Reading the logs: filters, keyset pages, streamed exports, and the figures for advocacy."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from services.audit import domain, store, suppression
from shared.db import Connection, Pool
from shared.errors import Invalid

NETWORK_FIELDS = ("seq", "at", "action", "from_org", "to_org", "object", "meta")
NARROW = timedelta(days=31)
LOCAL_COLUMN = "at_local"  # the CSV's display column; its header names the zone
LOCAL_TIME = "%Y-%m-%d %H:%M:%S"


class Log(StrEnum):
    OWN = "own"  # the node's chain
    NETWORK = "network"  # the hub's network log


class Order(StrEnum):
    ASC = "asc"
    DESC = "desc"


class Format(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    org: str | None = None
    actor: str | None = None
    action: str | None = None
    object: str | None = None
    outcome: str | None = None  # the own log only: the network log has no outcome

    def checked(self) -> Filters:
        if self.since and self.until and self.since >= self.until:
            raise Invalid("the end of the range must come after its start", field="to")
        return self

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.since.isoformat() if self.since else None,
            "to": self.until.isoformat() if self.until else None,
            "org": self.org,
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "outcome": self.outcome,
        }


def _where(log: Log, filters: Filters, args: list[Any]) -> list[str]:
    clauses: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if filters.since is not None:
        clauses.append(f"at >= {arg(filters.since)}")
    if filters.until is not None:
        clauses.append(f"at < {arg(filters.until)}")
    if filters.org is not None:
        if log is Log.OWN:
            clauses.append(f"actor_org = {arg(filters.org)}")
        else:
            placeholder = arg(filters.org)
            clauses.append(f"(from_org = {placeholder} OR to_org = {placeholder})")
    if filters.actor is not None:
        if log is Log.OWN:
            clauses.append(f"actor = {arg(filters.actor)}")
        else:  # on the network, the actor is the organisation that acted
            clauses.append(f"from_org = {arg(filters.actor)}")
    if filters.action is not None:
        clauses.append(f"action = {arg(filters.action)}")
    if filters.object is not None:
        clauses.append(f"object = {arg(filters.object)}")
    if filters.outcome is not None and log is Log.OWN:
        clauses.append(f"outcome = {arg(filters.outcome)}")
    return clauses


def _select(log: Log) -> str:
    if log is Log.OWN:
        return f"SELECT {store.ENTRY_COLUMNS} FROM audit.entry"
    return f"SELECT {', '.join(NETWORK_FIELDS)} FROM audit.network_event"


def _query(
    log: Log, filters: Filters, order: Order, cursor: int | None, limit: int | None
) -> tuple[str, list[Any]]:
    args: list[Any] = []
    clauses = _where(log, filters, args)
    if cursor is not None:
        args.append(cursor)
        clauses.append(f"seq {'>' if order is Order.ASC else '<'} ${len(args)}")
    sql = _select(log)
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    # A short time range is served best by the time index and a small sort; without this,
    # the planner walks the whole chain in sequence order hoping to meet the range early.
    narrow = filters.since and filters.until and filters.until - filters.since <= NARROW
    sql += f" ORDER BY seq{' + 0' if narrow else ''} {order.value.upper()}"
    if limit is not None:
        args.append(limit)
        sql += f" LIMIT ${len(args)}"
    return sql, args


def _plain(row: Any) -> dict[str, Any]:
    item = dict(row.items())
    item["at"] = item["at"].isoformat()
    return item


async def page(
    conn: Connection, log: Log, filters: Filters, order: Order, cursor: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of records, and the cursor of the next one (None at the end)."""
    sql, args = _query(log, filters.checked(), order, cursor, limit + 1)
    rows = await conn.fetch(sql, *args)
    items = [_plain(r) for r in rows[:limit]]
    next_cursor = items[-1]["seq"] if len(rows) > limit else None
    return items, next_cursor


ACTORS_MAX = 500


async def actors(conn: Connection) -> list[str]:
    """The actors the own log names, in order (at most ``ACTORS_MAX``): a walk of the actor
    index from one value to the next, so that a long chain costs one index probe per actor
    rather than a scan of every record."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE walk(actor) AS (
            (SELECT actor FROM audit.entry ORDER BY actor LIMIT 1)
            UNION ALL
            SELECT (SELECT e.actor FROM audit.entry e WHERE e.actor > walk.actor
                    ORDER BY e.actor LIMIT 1)
            FROM walk WHERE walk.actor IS NOT NULL
        )
        SELECT actor FROM walk WHERE actor IS NOT NULL LIMIT $1
        """,
        ACTORS_MAX,
    )
    return [row["actor"] for row in rows]


async def export(
    pool: Pool, log: Log, filters: Filters, fmt: Format, zone: ZoneInfo
) -> AsyncIterator[bytes]:
    """Every record matching ``filters``, oldest first, as CSV or NDJSON, a chunk at a time
    (a server-side cursor: a million records never sit in memory).

    NDJSON is for machines: ``at`` in UTC only. CSV is also read by people in a spreadsheet:
    beside ``at`` (UTC, ISO 8601) a display column gives the moment in ``zone`` (the node's),
    the zone named in its header."""
    sql, args = _query(log, filters.checked(), Order.ASC, None, None)
    fields = domain.ENTRY_FIELDS if log is Log.OWN else NETWORK_FIELDS
    async with pool.acquire() as conn, conn.transaction():
        if fmt is Format.CSV:
            yield _csv_line([*fields, f"{LOCAL_COLUMN} ({zone.key})"])
        batch: list[bytes] = []
        async for row in conn.cursor(sql, *args, prefetch=1000):
            local = row["at"].astimezone(zone).strftime(LOCAL_TIME)
            item = _plain(row)
            if fmt is Format.CSV:
                batch.append(_csv_line([*(_cell(item[f]) for f in fields), local]))
            else:
                batch.append(json.dumps(item, ensure_ascii=False).encode() + b"\n")
            if len(batch) >= 500:
                yield b"".join(batch)
                batch = []
        if batch:
            yield b"".join(batch)


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def _csv_line(values: Sequence[Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
    writer.writerow(
        ["'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in values]
    )
    return out.getvalue().encode()


# --- figures --------------------------------------------------------------------------------


class Dimension(StrEnum):
    CATEGORY = "category"
    REGION = "region"
    MONTH = "month"
    URGENCY = "urgency"
    OUTCOME = "outcome"
    FROM_ORG = "from_org"
    TO_ORG = "to_org"


_DIMENSION_SQL = {
    Dimension.CATEGORY: "category",
    Dimension.REGION: "coalesce(region, 'unknown')",
    # The month as the node's people count it (Months, below).
    Dimension.MONTH: "({labels})[width_bucket(created_at, {starts})]",
    Dimension.URGENCY: "urgency",
    Dimension.OUTCOME: (
        "CASE WHEN status IN ('completed', 'declined', 'closed_unresolved', 'withdrawn',"
        " 'expired') THEN status ELSE 'open' END"
    ),
    Dimension.FROM_ORG: "from_org",
    Dimension.TO_ORG: "to_org",
}


def _range(since: datetime | None, until: datetime | None, args: list[Any]) -> str:
    clauses = ["created_at IS NOT NULL"]
    if since is not None:
        args.append(since)
        clauses.append(f"created_at >= ${len(args)}")
    if until is not None:
        args.append(until)
        clauses.append(f"created_at < ${len(args)}")
    return " AND ".join(clauses)


@dataclass(frozen=True)
class Months:
    """The months the counted referrals fall in, as the node's people count them: a referral
    sent at 00:30 on the 1st in Casablanca is that month's, though still the previous month in
    UTC. The month starts are worked out here with Python's zone database and passed to the
    query, not left to PostgreSQL's ``AT TIME ZONE``: the embedded server's own zone data says
    Casablanca is UTC+0 all year after 2022 (its rule ends there), an hour off."""

    starts: list[datetime]  # each month's first instant, then the instant after the last
    labels: list[str]  # "YYYY-MM", one per month

    @classmethod
    def spanning(cls, first: datetime | None, last: datetime | None, zone: str) -> Months:
        if first is None or last is None:
            return cls([], [])
        tz = ZoneInfo(zone)
        local, end = first.astimezone(tz), last.astimezone(tz)
        year, month = local.year, local.month
        starts, labels = [], []
        while (year, month) <= (end.year, end.month):
            starts.append(datetime(year, month, 1, tzinfo=tz).astimezone(UTC))
            labels.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        starts.append(datetime(year, month, 1, tzinfo=tz).astimezone(UTC))
        return cls(starts, labels)


async def months_of(
    conn: Connection, since: datetime | None, until: datetime | None, zone: str
) -> Months:
    args: list[Any] = []
    span = await conn.fetchrow(
        "SELECT min(created_at), max(created_at) FROM audit.referral_fact"
        f" WHERE {_range(since, until, args)}",
        *args,
    )
    if span is None:  # an aggregate gives one row; none would mean nothing to count
        return Months([], [])
    return Months.spanning(span[0], span[1], zone)


def _keys(by: Sequence[Dimension], args: list[Any], months: Months) -> list[str]:
    """The grouping expressions, the month starts passed as parameters where a month needs
    them."""
    keys = []
    for d in by:
        expression = _DIMENSION_SQL[d]
        if "{labels}" in expression:
            args += [months.labels, months.starts]
            expression = expression.format(
                labels=f"${len(args) - 1}::text[]", starts=f"${len(args)}::timestamptz[]"
            )
        keys.append(f"{expression} AS {d.value}")
    return keys


def _table(
    by: Sequence[Dimension],
    rows: Sequence[Any],
    column: str = "n",
    hidden: Collection[Any] = (),
) -> tuple[suppression.Protected, Callable[[Any], tuple[tuple[Any, ...], Any]]]:
    """The protected table of the rows' counts in ``column`` and how a row finds its cell: a
    table by several dimensions is a table of the last one against the others (its row
    totals are the counts by the others, its column totals the counts by the last, its
    grand total the count of everything, each a query of its own); by one, a list beside
    the total of everything. ``hidden``: for a list, its values that must be hidden."""
    *head, last = by

    def key(row: Any) -> tuple[tuple[Any, ...], Any]:
        return tuple(row[d.value] for d in head), row[last.value]

    counts = {key(row): int(row[column]) for row in rows}
    if not head:
        return suppression.one_way_table({c: n for (_, c), n in counts.items()}, hidden=hidden), key
    return suppression.protect(counts), key


def protected_counts(
    by: Sequence[Dimension],
    rows: Sequence[Any],
    column: str = "n",
    hidden: tuple[Collection[Any], bool] = ((), False),
) -> list[int | str]:
    """Each row's count in ``column`` as the figures may show it: small counts "<5", and the
    second counts hidden ("x") so that no small one comes back by subtraction from a total
    another query publishes (services/audit/suppression.py). ``hidden``: what more detailed
    tables had to hide here (``hidden_by_details``)."""
    values, everything = hidden
    if not by:
        return [
            suppression.HIDDEN
            if everything and row[column] >= domain.SMALL_COUNT
            else domain.shown(row[column])
            for row in rows
        ]
    table, key = _table(by, rows, column, values)
    return [table.cell(*key(row)) for row in rows]


async def _grouped(
    conn: Connection,
    by: Sequence[Dimension],
    since: datetime | None,
    until: datetime | None,
    months: Months,
) -> list[Any]:
    args: list[Any] = []
    keys = _keys(by, args, months)
    groups = ", ".join(str(i + 1) for i in range(len(by)))
    sql = (
        f"SELECT {', '.join([*keys, 'count(*) AS n'])} FROM audit.referral_fact"
        f" WHERE {_range(since, until, args)}"
    )
    if by:
        sql += f" GROUP BY {groups} ORDER BY {groups}"
    return list(await conn.fetch(sql, *args))


async def hidden_by_details(
    conn: Connection,
    by: Sequence[Dimension],
    since: datetime | None,
    until: datetime | None,
    months: Months,
) -> tuple[set[Any], bool]:
    """What the more detailed tables had to hide as their last resort, which this one must
    hide too (it publishes the same count): for a list by one dimension, its values that a
    table of two dimensions hid as a row or column total, and for the total of everything,
    whether a list or a table hid it. Tables of two dimensions or more: nothing (their
    margins are not fed back from tables of three)."""
    fetched: dict[tuple[Dimension, ...], list[Any]] = {}

    async def rows_of(dims: tuple[Dimension, ...]) -> list[Any]:
        if dims not in fetched:
            fetched[dims] = await _grouped(conn, dims, since, until, months)
        return fetched[dims]

    async def for_list(a: Dimension) -> tuple[set[Any], bool]:
        values: set[Any] = set()
        everything = False
        for d in Dimension:
            if d is a:
                continue
            for dims, side in (((a, d), 0), ((d, a), 1)):
                table, _ = _table(dims, await rows_of(dims))
                rows, columns, grand = suppression.hidden_margins(table)
                values |= {r[0] for r in rows} if side == 0 else columns
                everything |= grand
        return values, everything

    if len(by) == 1:
        return await for_list(by[0])
    if by:
        return set(), False
    everything = False
    for d in Dimension:
        values, grand = await for_list(d)
        table, _ = _table((d,), await rows_of((d,)), hidden=values)
        everything |= grand or table.row_total(()) == suppression.HIDDEN
    return set(), everything


async def referral_counts(
    conn: Connection,
    by: Sequence[Dimension],
    since: datetime | None,
    until: datetime | None,
    zone: str = "UTC",
) -> list[dict[str, Any]]:
    """Referrals counted by the chosen dimensions (months in ``zone``); counts under five
    shown as "<5", and as many more hidden as "x" as it takes for none to be worked out."""
    Filters(since, until).checked()
    months = await months_of(conn, since, until, zone)
    rows = await _grouped(conn, by, since, until, months)
    hidden = await hidden_by_details(conn, by, since, until, months)
    return [
        {**{d.value: row[d.value] for d in by}, "referrals": shown}
        for row, shown in zip(rows, protected_counts(by, rows, hidden=hidden), strict=True)
    ]


async def response_times(
    conn: Connection,
    by: Sequence[Dimension],
    since: datetime | None,
    until: datetime | None,
    zone: str = "UTC",
) -> list[dict[str, Any]]:
    """Median hours to answer and to complete, by group; a group under five referrals shows
    no times (a time could point at one person's case). Its counts (referred, answered,
    completed) are each a table protected as the referral figures are, the referral counts
    exactly as those figures hide them (one could not undo the other)."""
    Filters(since, until).checked()
    months = await months_of(conn, since, until, zone)
    args: list[Any] = []
    keys = _keys(by, args, months)
    groups = ", ".join(str(i + 1) for i in range(len(by)))
    hours = "extract(epoch FROM ({0} - created_at)) / 3600.0"
    sql = (
        f"SELECT {', '.join([*keys, 'count(*) AS n'])},"
        f" count(answered_at) AS answered, count(completed_at) AS completed,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {hours.format('answered_at')})"
        "  AS answer_hours,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {hours.format('completed_at')})"
        "  AS complete_hours"
        f" FROM audit.referral_fact WHERE {_range(since, until, args)}"
    )
    if by:
        sql += f" GROUP BY {groups} ORDER BY {groups}"
    result = []
    rows = await conn.fetch(sql, *args)
    shown = {name: protected_counts(by, rows, name) for name in ("answered", "completed")}
    hidden = await hidden_by_details(conn, by, since, until, months)
    shown["n"] = protected_counts(by, rows, hidden=hidden)
    for i, row in enumerate(rows):
        item: dict[str, Any] = {d.value: row[d.value] for d in by}
        item["referrals"] = shown["n"][i]
        item["answered"] = shown["answered"][i]
        item["completed"] = shown["completed"][i]
        big = row["answered"] >= domain.SMALL_COUNT
        item["median_hours_to_answer"] = round(row["answer_hours"], 1) if big else None
        big = row["completed"] >= domain.SMALL_COUNT
        item["median_hours_to_complete"] = round(row["complete_hours"], 1) if big else None
        result.append(item)
    return result


async def overdue_rates(
    conn: Connection, since: datetime | None, until: datetime | None, zone: str = "UTC"
) -> list[dict[str, Any]]:
    """Per receiving organisation: referrals received, how many went overdue, the rate.

    The received counts are the referral figures by receiving organisation, hidden the same
    way; a rate beside a hidden count is not given (the overdue count over the rate would
    give the count back)."""
    Filters(since, until).checked()
    args: list[Any] = []
    rows = await conn.fetch(
        "SELECT to_org, count(*) AS n, count(*) FILTER (WHERE escalated) AS overdue"
        f" FROM audit.referral_fact WHERE to_org IS NOT NULL AND {_range(since, until, args)}"
        " GROUP BY to_org ORDER BY to_org",
        *args,
    )
    months = await months_of(conn, since, until, zone)
    hidden = await hidden_by_details(conn, [Dimension.TO_ORG], since, until, months)
    received = protected_counts([Dimension.TO_ORG], rows, hidden=hidden)
    return [
        {
            "org": row["to_org"],
            "referrals": referrals,
            "overdue": domain.shown(row["overdue"]),
            "overdue_rate": (
                domain.rate(row["overdue"], row["n"])
                if isinstance(referrals, int) or not row["overdue"]
                else None
            ),
        }
        for row, referrals in zip(rows, received, strict=True)
    ]


async def coverage(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT record FROM audit.provider ORDER BY org_id")
    return domain.coverage(row["record"] for row in rows)
