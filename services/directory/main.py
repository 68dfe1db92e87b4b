"""Wiring of the directory service: its router, migrations, consumers and, on the hub, the
federation streams of every organisation it knows."""

from __future__ import annotations

from pathlib import Path

from services.directory import consumer, handlers, reference
from services.directory.api import router
from shared.service import Service, ServiceContext


async def start(ctx: ServiceContext) -> None:
    reference.reference()  # a broken data file stops the node now, not at the first request
    await handlers.ensure_hub_topology(ctx)
    for subscription in consumer.subscriptions(ctx):
        await ctx.subscribe(subscription)


service = Service(
    name="directory",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    start=start,
)
