"""The deadline clock: fires due reminders, breaches and expiries, and erases the payloads
of referrals past retention. Its time is PostgreSQL's (``referrals.clock_now()``), so it
survives restarts; moving ``referrals.clock.skew`` (tests) wakes it at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from services.referrals import floods, handlers
from shared.db import Connection
from shared.service import ServiceContext

log = logging.getLogger(__name__)
CHANNEL = "relais_referrals_clock"
SHRED_EVERY = 3600.0  # seconds between retention passes


async def run(ctx: ServiceContext) -> None:
    woken = asyncio.Event()
    listener = await _listen(ctx, woken)
    since_shred = SHRED_EVERY
    try:
        while True:
            try:
                fired = await handlers.fire_due_alarms(ctx)
                await handlers.expire_consents(ctx)
                await floods.report_growing(ctx)
                if fired:
                    log.info("referrals clock: %d alarm(s) fired", fired)
                if since_shred >= SHRED_EVERY or woken.is_set():
                    erased = await handlers.shred_expired_payloads(ctx)
                    if erased:
                        log.info("referrals: %d closed referral payload(s) erased", len(erased))
                    since_shred = 0.0
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away: try again at the next tick
                log.exception("referrals clock: tick failed")
            woken.clear()
            interval = ctx.settings.referral_clock_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), interval)
            since_shred += interval
    finally:
        if listener is not None:
            await listener.close()


async def _listen(ctx: ServiceContext, woken: asyncio.Event) -> Connection | None:
    try:
        conn: Connection = await asyncpg.connect(ctx.settings.database_url)
        await conn.add_listener(CHANNEL, lambda *_: woken.set())
    except (OSError, asyncpg.PostgresError):
        log.warning("referrals clock: no LISTEN connection; ticking only")
        return None
    return conn
