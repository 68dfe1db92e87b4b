"""The notifications service's figures for ``/metrics``: deliveries that fail, and how late
the queue runs (polled from its tables; see shared/metrics.py)."""

from __future__ import annotations

from prometheus_client import Gauge

from shared import metrics
from shared.service import ServiceContext

CHANNELS = ("email", "sms", "webhook")
RETRYING = Gauge(
    "relais_notification_deliveries_retrying",
    "Deliveries whose last attempt failed and that will be tried again",
    ["channel"],
)
FAILED = Gauge(
    "relais_notification_deliveries_failed",
    "Deliveries given up on after their last retry (kept in the delivery log)",
    ["channel"],
)
OVERDUE = Gauge(
    "relais_notification_oldest_due_seconds",
    "How long the oldest delivery due to go out has been waiting (0: none)",
)
WEBHOOKS_DISABLED = Gauge(
    "relais_notification_webhooks_disabled",
    "Member systems' webhooks disabled after failing again and again",
)


def watch(ctx: ServiceContext) -> None:
    metrics.watch(ctx, {"deliveries": lambda: deliveries(ctx)})


async def deliveries(ctx: ServiceContext) -> None:
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT channel,"
            " count(*) FILTER (WHERE state = 'pending' AND attempts > 0) AS retrying,"
            " count(*) FILTER (WHERE state = 'failed') AS failed"
            " FROM notifications.delivery GROUP BY channel"
        )
        waiting = await conn.fetchval(
            "SELECT extract(epoch FROM now() - min(due_at)) FROM notifications.delivery"
            " WHERE state = 'pending' AND due_at <= now()"
        )
        disabled = await conn.fetchval(
            "SELECT count(*) FROM notifications.webhook WHERE NOT enabled"
        )
    counts = {r["channel"]: r for r in rows}
    for channel in CHANNELS:  # every channel, 0 included: an absent series alerts on nothing
        row = counts.get(channel)
        RETRYING.labels(channel).set(row["retrying"] if row else 0)
        FAILED.labels(channel).set(row["failed"] if row else 0)
    OVERDUE.set(max(float(waiting or 0), 0.0))
    WEBHOOKS_DISABLED.set(disabled)
