"""Idempotent consumption: an effect is applied once per (consumer, event), however often it
is delivered. Call ``first_time`` inside the handler's transaction, before the effect."""

from __future__ import annotations

from shared.db import Connection


async def first_time(conn: Connection, schema: str, consumer: str, event_id: str) -> bool:
    """Record the event as processed by ``consumer``; False if it already was."""
    inserted = await conn.fetchval(
        f"INSERT INTO {schema}.processed (consumer, event_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event_id,
    )
    return bool(inserted)
