"""Wiring of the notifications service: its settings, consumers, the delivery worker and the
live-update listener."""

from __future__ import annotations

from pathlib import Path

from services.notifications import consumer, handlers, metrics, webhook_document
from services.notifications.api import router
from services.notifications.settings import NotificationSettings
from shared.service import Service, ServiceContext


async def start(ctx: ServiceContext) -> None:
    notifier = ctx.state = handlers.Notifier(ctx, NotificationSettings())
    await handlers.seal_clear_secrets(notifier)
    ctx.background("live updates", lambda: notifier.live.run(ctx.settings.database_url))
    ctx.background("delivery worker", lambda: handlers.run_worker(notifier))
    ctx.background("category labels", notifier.learn_categories)
    metrics.watch(ctx)
    for subscription in consumer.subscriptions(notifier):
        await ctx.subscribe(subscription)


service = Service(
    name="notifications",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    start=start,
    webhooks=webhook_document.router,
)
