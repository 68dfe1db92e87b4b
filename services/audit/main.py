"""Wiring of the audit service: its schema and append-only role, the consumer chaining what the
node's services record, the checkpoint clock; on the hub, the checkpoints of every node and the
network log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from nats.js.errors import NotFoundError

from services.audit import consumer, handlers, metrics
from services.audit.api import router
from shared.service import Service, ServiceContext

log = logging.getLogger(__name__)


async def start(ctx: ServiceContext) -> None:
    await handlers.audit_of(ctx)
    ctx.background("writer pool", lambda: _hold_writer(ctx))
    await handlers.record_keys(ctx)
    await ctx.subscribe(consumer.records(ctx))
    ctx.background("checkpoint clock", lambda: handlers.checkpoint_clock(ctx))
    metrics.watch(ctx)
    if ctx.settings.is_hub:
        await ctx.subscribe(consumer.checkpoints(ctx))
        ctx.background("network log", lambda: _watch_router(ctx))


async def _hold_writer(ctx: ServiceContext) -> None:
    """Closes the append-only pool when the service stops (its tasks are cancelled)."""
    try:
        await asyncio.Event().wait()
    finally:
        await handlers.close(ctx)


async def _watch_router(ctx: ServiceContext) -> None:
    """Subscribe to ``ROUTER`` once the directory has made it (it does at the hub's start)."""
    while True:
        try:
            await ctx.subscribe(consumer.network(ctx))
            return
        except NotFoundError:
            log.info("audit: no ROUTER stream yet; the network log waits for it")
        with contextlib.suppress(TimeoutError):
            await asyncio.sleep(2)


service = Service(
    name="audit", router=router, migrations=Path(__file__).parent / "migrations", start=start
)
