"""Directory queries on schema ``directory``; each write commits with its outgoing events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.directory import domain
from shared.contracts.directory import FloodReported, OrganisationPublished
from shared.db import Connection

SCHEMA = "directory"


async def get_organisation(conn: Connection, org_id: str) -> OrganisationPublished | None:
    record = await conn.fetchval(
        "SELECT record FROM directory.organisation WHERE org_id = $1", org_id
    )
    return OrganisationPublished.model_validate(record) if record else None


async def list_organisations(conn: Connection) -> list[OrganisationPublished]:
    rows = await conn.fetch("SELECT record FROM directory.organisation ORDER BY org_id")
    return [OrganisationPublished.model_validate(row["record"]) for row in rows]


async def save_organisation(conn: Connection, record: OrganisationPublished) -> None:
    """Store a record, and rebuild the rows its services are searched by."""
    data = record.model_dump(mode="json")
    await conn.execute(
        "INSERT INTO directory.organisation"
        " (org_id, version, name, kind, status, city, node_url, record)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (org_id) DO UPDATE SET version = EXCLUDED.version, name = EXCLUDED.name,"
        " kind = EXCLUDED.kind, status = EXCLUDED.status, city = EXCLUDED.city,"
        " node_url = EXCLUDED.node_url, record = EXCLUDED.record, updated_at = now()",
        data["org_id"],
        data["version"],
        data["name"],
        data["kind"],
        data["status"],
        data["city"],
        data["node_url"],
        data,
    )
    await conn.execute("DELETE FROM directory.service WHERE org_id = $1", record.org_id)
    await conn.executemany(
        "INSERT INTO directory.service (org_id, service_id, category, languages, cities, regions,"
        " national, populations, capacity, takes_referrals, search_text)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        [
            (
                record.org_id,
                offer.service_id,
                offer.category,
                offer.languages,
                offer.cities,
                offer.regions,
                offer.national,
                offer.eligibility.populations,
                offer.capacity.value,
                offer.takes_referrals,
                domain.search_text(record, offer),
            )
            for offer in record.services
        ],
    )


async def record_probe(conn: Connection, org_id: str, probe_id: str, probed_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO directory.link (org_id, probe_id, probed_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (org_id) DO UPDATE SET probe_id = EXCLUDED.probe_id,"
        " probed_at = EXCLUDED.probed_at, answered_at = NULL, round_trip_ms = NULL",
        org_id,
        probe_id,
        probed_at,
    )


async def get_probe(conn: Connection, org_id: str, probe_id: str) -> datetime | None:
    probed_at: datetime | None = await conn.fetchval(
        "SELECT probed_at FROM directory.link WHERE org_id = $1 AND probe_id = $2",
        org_id,
        probe_id,
    )
    return probed_at


async def record_answer(
    conn: Connection, org_id: str, probe_id: str, answered_at: datetime, round_trip_ms: float
) -> None:
    await conn.execute(
        "UPDATE directory.link SET answered_at = $3, round_trip_ms = $4"
        " WHERE org_id = $1 AND probe_id = $2",
        org_id,
        probe_id,
        answered_at,
        round_trip_ms,
    )


async def list_links(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT org_id, probe_id, probed_at, answered_at, round_trip_ms"
        " FROM directory.link ORDER BY org_id"
    )
    return [dict(row) for row in rows]


async def record_flood(conn: Connection, reporter: str, report: FloodReported) -> bool:
    """Keep a node's report of an incident (its largest figures); whether it is the first."""
    first = await conn.fetchval(
        "INSERT INTO directory.flood_report"
        " (incident_id, reporter, sender, opened_at, last_at, refused)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (incident_id) DO UPDATE"
        " SET last_at = GREATEST(flood_report.last_at, EXCLUDED.last_at),"
        " refused = GREATEST(flood_report.refused, EXCLUDED.refused), received_at = now()"
        " WHERE flood_report.reporter = EXCLUDED.reporter"
        " RETURNING (xmax = 0)",
        f"{reporter}:{report.incident_id}",
        reporter,
        report.sender,
        report.opened_at,
        report.last_at,
        report.refused,
    )
    return bool(first)


async def list_floods(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The incidents nodes reported, the latest first."""
    rows = await conn.fetch(
        "SELECT incident_id, reporter, sender, opened_at, last_at, refused"
        " FROM directory.flood_report ORDER BY last_at DESC LIMIT $1",
        limit,
    )
    return [dict(row) for row in rows]


async def record_change_request(
    conn: Connection, org_id: str, version: int, requested_by: str
) -> None:
    await conn.execute(
        "INSERT INTO directory.change_request (org_id, version, requested_by) VALUES ($1, $2, $3)"
        " ON CONFLICT (org_id, version) DO UPDATE SET requested_by = EXCLUDED.requested_by,"
        " requested_at = now(), state = 'requested', reason = NULL, field = NULL",
        org_id,
        version,
        requested_by,
    )


async def settle_change_requests(conn: Connection, org_id: str, published_version: int) -> None:
    """Requests up to a version the hub has published are settled: published."""
    await conn.execute(
        "UPDATE directory.change_request SET state = 'published'"
        " WHERE org_id = $1 AND version <= $2 AND state = 'requested'",
        org_id,
        published_version,
    )


async def refuse_change_request(
    conn: Connection, org_id: str, version: int, reason: str, field: str | None
) -> None:
    await conn.execute(
        "UPDATE directory.change_request SET state = 'refused', reason = $3, field = $4"
        " WHERE org_id = $1 AND version = $2",
        org_id,
        version,
        reason,
        field,
    )


async def list_change_requests(conn: Connection, org_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT org_id, version, requested_by, requested_at, state, reason, field"
        " FROM directory.change_request WHERE org_id = $1 ORDER BY version DESC LIMIT 50",
        org_id,
    )
    return [dict(row) for row in rows]


async def save_leaf_credential(
    conn: Connection, org_id: str, nkey: str, issued_at: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO directory.leaf_credential (org_id, nkey, issued_at, expires_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (org_id) DO UPDATE SET nkey = EXCLUDED.nkey,"
        " issued_at = EXCLUDED.issued_at, expires_at = EXCLUDED.expires_at",
        org_id,
        nkey,
        issued_at,
        expires_at,
    )


async def leaf_credentials(conn: Connection) -> dict[str, tuple[str, datetime, datetime]]:
    """Every organisation's NATS key: (nkey, issued at, expires at)."""
    rows = await conn.fetch(
        "SELECT org_id, nkey, issued_at, expires_at FROM directory.leaf_credential"
    )
    return {r["org_id"]: (r["nkey"], r["issued_at"], r["expires_at"]) for r in rows}
