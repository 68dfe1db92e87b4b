"""Wiring of the directory service: its router, migrations, consumers and, on the hub, the
federation streams of every organisation it knows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from services.directory import consumer, handlers, reference, second_links, store
from services.directory.api import router
from shared.service import Service, ServiceContext

log = logging.getLogger(__name__)


async def start(ctx: ServiceContext) -> None:
    reference.reference()  # a broken data file stops the node now, not at the first request
    await handlers.ensure_hub_topology(ctx)
    if ctx.settings.is_hub:  # credentials that run out are refused without a roster change
        ctx.background("credential expiry", lambda: _recheck(ctx))
    if ctx.settings.is_hub and ctx.settings.nats_system_url is not None:
        # A second leaf link refused for a member's credentials: a copy of its nkey is about.
        ctx.background("second links", lambda: second_links.watch(ctx))
    if not ctx.settings.is_hub:
        async with ctx.pool.acquire() as conn:
            empty = not await store.list_organisations(conn)
        if empty:  # a new node, or a replica rebuilt from scratch: ask for every record
            await handlers.request_replay(ctx, "empty replica at start")
        async with ctx.pool.acquire() as conn:
            own = await store.get_organisation(conn, ctx.settings.org)
        if own is not None:  # new keys published while the node was stopping
            handlers.take_up_keys(ctx, own)
    for subscription in consumer.subscriptions(ctx):
        await ctx.subscribe(subscription)
    for subject, responder in consumer.commands(ctx).items():
        await ctx.bus.serve(subject, responder, queue="directory")


async def _recheck(ctx: ServiceContext, every: float = 30.0) -> None:
    """Apply the roster's accounts again at the next credential's expiry (or every ``every``
    seconds), so that credentials that run out are refused at once."""
    while True:
        try:
            handlers.credentials_changed.clear()  # before reading: a change after it wakes us
            expiry = await handlers.next_credential_expiry(ctx)
            wait = every
            if expiry is not None:
                wait = min(every, max((expiry - datetime.now(UTC)).total_seconds(), 0) + 0.1)
            with contextlib.suppress(TimeoutError):  # woken early by new credentials
                await asyncio.wait_for(handlers.credentials_changed.wait(), wait)
            await handlers.ensure_hub_topology(ctx)
        except Exception:  # the next round tries again; the log says why
            log.exception("hub: checking the roster's NATS accounts failed")
            await asyncio.sleep(every)


service = Service(
    name="directory",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    start=start,
)
