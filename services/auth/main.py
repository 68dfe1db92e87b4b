"""The auth service as the node runs it: schema ``auth``, its router, and its upkeep."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import asyncpg

from services.auth import clients
from services.auth.api import router
from shared.auth import session_store, store
from shared.service import Service, ServiceContext

log = logging.getLogger(__name__)

# The schema ``auth`` is this service's; the guards of every service read it (shared/auth).
MIGRATIONS = Path(__file__).parent / "migrations"

UPKEEP_EVERY = timedelta(hours=1)


async def start(context: ServiceContext) -> None:
    store.serve_org(context.pool, context.settings.org)
    if not await store.has_active_admin(context.pool):
        log.warning(
            "node %s has no active administrator yet: create one with"
            " `relais user add <username> --role admin`",
            context.settings.node_id,
        )
    context.background("forget spent access tokens and sessions", lambda: _upkeep(context))
    if not context.settings.is_hub:  # the hub has none (clients.NoClientsOnTheHub)
        context.background(
            "member-system clients' NATS users and feeds",
            lambda: clients.keep_in_step(context.pool, context.bus, context.settings),
        )


async def _upkeep(context: ServiceContext) -> None:
    """Access tokens and sessions are made at every login; the spent ones would pile up."""
    while True:
        try:
            forgotten = await store.forget_spent_access_tokens(context.pool)
            if forgotten:
                log.info("forgot %d spent access tokens", forgotten)
            forgotten = await session_store.forget_spent(context.pool)
            if forgotten:
                log.info("forgot %d spent sessions", forgotten)
        except (OSError, asyncpg.PostgresError):
            # The database is away for a moment; the next round catches up.
            log.warning("could not forget spent access tokens; retrying later", exc_info=True)
        await asyncio.sleep(UPKEEP_EVERY.total_seconds())


service = Service(name="auth", router=router, migrations=MIGRATIONS, start=start)
