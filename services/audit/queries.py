"""Reading the logs: filters, keyset pages, streamed exports, and the figures for advocacy."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.audit import domain
from shared.db import Connection, Pool
from shared.errors import Invalid

ENTRY_FIELDS = (
    "seq",
    "at",
    "service",
    "actor_org",
    "actor",
    "action",
    "object",
    "digest",
    "outcome",
    "event_id",
    "prev_hash",
    "hash",
)
NETWORK_FIELDS = ("seq", "at", "action", "from_org", "to_org", "object", "meta")
NARROW = timedelta(days=31)


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
    return clauses


def _select(log: Log) -> str:
    if log is Log.OWN:
        columns = ", ".join(ENTRY_FIELDS).replace("event_id", "event_id::text AS event_id")
        return f"SELECT {columns} FROM audit.entry"
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


async def export(pool: Pool, log: Log, filters: Filters, fmt: Format) -> AsyncIterator[bytes]:
    """Every record matching ``filters``, oldest first, as CSV or NDJSON, a chunk at a time
    (a server-side cursor: a million records never sit in memory)."""
    sql, args = _query(log, filters.checked(), Order.ASC, None, None)
    fields = ENTRY_FIELDS if log is Log.OWN else NETWORK_FIELDS
    async with pool.acquire() as conn, conn.transaction():
        if fmt is Format.CSV:
            yield _csv_line(fields)
        batch: list[bytes] = []
        async for row in conn.cursor(sql, *args, prefetch=1000):
            item = _plain(row)
            if fmt is Format.CSV:
                batch.append(_csv_line([_cell(item[f]) for f in fields]))
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
    Dimension.MONTH: "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')",
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


async def referral_counts(
    conn: Connection,
    by: Sequence[Dimension],
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    """Referrals counted by the chosen dimensions; counts under five shown as "<5"."""
    Filters(since, until).checked()
    args: list[Any] = []
    keys = [f"{_DIMENSION_SQL[d]} AS {d.value}" for d in by]
    groups = ", ".join(str(i + 1) for i in range(len(by)))
    sql = (
        f"SELECT {', '.join([*keys, 'count(*) AS n'])} FROM audit.referral_fact"
        f" WHERE {_range(since, until, args)}"
    )
    if by:
        sql += f" GROUP BY {groups} ORDER BY {groups}"
    rows = await conn.fetch(sql, *args)
    return [
        {**{d.value: row[d.value] for d in by}, "referrals": domain.shown(row["n"])} for row in rows
    ]


async def response_times(
    conn: Connection,
    by: Sequence[Dimension],
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    """Median hours to answer and to complete, by group; a group under five referrals shows
    no times (a time could point at one person's case)."""
    Filters(since, until).checked()
    args: list[Any] = []
    keys = [f"{_DIMENSION_SQL[d]} AS {d.value}" for d in by]
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
    for row in await conn.fetch(sql, *args):
        item: dict[str, Any] = {d.value: row[d.value] for d in by}
        item["referrals"] = domain.shown(row["n"])
        item["answered"] = domain.shown(row["answered"])
        item["completed"] = domain.shown(row["completed"])
        big = row["answered"] >= domain.SMALL_COUNT
        item["median_hours_to_answer"] = round(row["answer_hours"], 1) if big else None
        big = row["completed"] >= domain.SMALL_COUNT
        item["median_hours_to_complete"] = round(row["complete_hours"], 1) if big else None
        result.append(item)
    return result


async def overdue_rates(
    conn: Connection, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """Per receiving organisation: referrals received, how many went overdue, the rate."""
    Filters(since, until).checked()
    args: list[Any] = []
    rows = await conn.fetch(
        "SELECT to_org, count(*) AS n, count(*) FILTER (WHERE escalated) AS overdue"
        f" FROM audit.referral_fact WHERE to_org IS NOT NULL AND {_range(since, until, args)}"
        " GROUP BY to_org ORDER BY to_org",
        *args,
    )
    return [
        {
            "org": row["to_org"],
            "referrals": domain.shown(row["n"]),
            "overdue": domain.shown(row["overdue"]),
            "overdue_rate": domain.rate(row["overdue"], row["n"]),
        }
        for row in rows
    ]


async def coverage(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT record FROM audit.provider ORDER BY org_id")
    return domain.coverage(row["record"] for row in rows)
