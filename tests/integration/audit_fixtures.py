"""An audit service on a fresh database, without NATS: its context, records to chain, and the
owner's connection a tamperer would use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.audit import handlers
from services.audit.domain import Draft
from shared import db
from shared.audit_trail import digest
from shared.events import new_event_id
from shared.service import ServiceContext
from shared.settings import NodeRole
from tests.integration.apps import node_settings

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def drafts(count: int, *, start: int = 0, actor: str = "user:focal") -> list[Draft]:
    return [
        Draft(
            at=T0 + timedelta(minutes=start + i),
            service="referrals",
            actor_org="sanad",
            actor=actor,
            action="referral.accepted" if (start + i) % 2 else "referral.payload_read",
            object=f"referral:{start + i:04d}",
            digest=digest({"n": start + i}),
            outcome="ok",
            event_id=new_event_id(),
        )
        for i in range(count)
    ]


@pytest.fixture
async def audit_ctx(database_url: str) -> AsyncIterator[ServiceContext]:
    pool = await db.create_pool(database_url, max_size=4)
    ctx = ServiceContext(
        name="audit",
        settings=node_settings(database_url),
        pool=pool,
        bus=None,  # type: ignore[arg-type]
    )
    try:
        yield ctx
    finally:
        await handlers.close(ctx)
        await pool.close()


@pytest.fixture
async def hub_audit_ctx(database_url: str) -> AsyncIterator[ServiceContext]:
    pool = await db.create_pool(database_url, max_size=4)
    settings = node_settings(database_url, node_id="hub", role=NodeRole.SECRETARIAT)
    settings = settings.model_copy(update={"org": "secretariat"})
    ctx = ServiceContext(name="audit", settings=settings, pool=pool, bus=None)  # type: ignore[arg-type]
    try:
        yield ctx
    finally:
        await handlers.close(ctx)
        await pool.close()


async def tamper(database_url: str, *statements: str) -> None:
    """What someone with the database owner's password can do: lift the trigger, edit."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE audit.entry DISABLE TRIGGER entry_append_only")
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("ALTER TABLE audit.entry ENABLE TRIGGER entry_append_only")
    finally:
        await conn.close()
