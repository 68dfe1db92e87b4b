"""The referrals service's figures for ``/metrics``: referrals past a deadline, by urgency
(polled; see shared/metrics.py). Counted on the service's own clock, as its deadlines are.

``box``: ``inbox``, what this organisation owes others; ``outbox``, what it waits for.
"""

from __future__ import annotations

from prometheus_client import Gauge

from services.referrals.domain import Deadline
from shared import metrics
from shared.contracts.referrals import Urgency
from shared.service import ServiceContext

OVERDUE = Gauge(
    "relais_referrals_overdue",
    "Open referrals past their acknowledge or answer deadline, still owed by the recipient",
    ["box", "urgency", "deadline"],
)
# What the recipient still owes, per deadline (domain.still_pending).
_OWED = {
    Deadline.ACKNOWLEDGE: "status IN ('sent', 'received') AND acknowledge_by < now",
    Deadline.ANSWER: "status IN ('sent', 'received', 'accepted') AND answer_by < now",
}


def watch(ctx: ServiceContext) -> None:
    metrics.watch(ctx, {"deadlines": lambda: overdue(ctx)})


async def overdue(ctx: ServiceContext) -> None:
    rows = await ctx.pool.fetch(
        f"""
        WITH clock AS (SELECT referrals.clock_now() AS now)
        SELECT box, urgency,
               count(*) FILTER (WHERE {_OWED[Deadline.ACKNOWLEDGE]}) AS acknowledge,
               count(*) FILTER (WHERE {_OWED[Deadline.ANSWER]}) AS answer
        FROM referrals.referrals, clock
        WHERE closed_at IS NULL
        GROUP BY box, urgency
        """
    )
    found = {(r["box"], r["urgency"]): r for r in rows}
    for box in ("inbox", "outbox"):  # every series, 0 included: absent ones alert on nothing
        for urgency in Urgency:
            row = found.get((box, urgency.value))
            for deadline in Deadline:
                OVERDUE.labels(box, urgency.value, deadline.value).set(
                    row[deadline.value] if row else 0
                )
