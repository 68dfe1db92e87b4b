"""The audit service's figures for ``/metrics``: how much of the chain's head no signed
checkpoint covers yet, and since when (polled; see shared/metrics.py).

A node signs a checkpoint only when something was added, so the last checkpoint's age alone
grows on a quiet node; what should worry an operator is a record left unsigned for long.
"""

from __future__ import annotations

from prometheus_client import Gauge

from shared import metrics
from shared.service import ServiceContext

UNSIGNED = Gauge(
    "relais_audit_unsigned_records",
    "Audit records after the last signed checkpoint (not yet covered by a signature)",
)
UNSIGNED_AGE = Gauge(
    "relais_audit_checkpoint_age_seconds",
    "Age of the oldest audit record no signed checkpoint covers yet (0: all covered)",
)
LAST_CHECKPOINT = Gauge(
    "relais_audit_last_checkpoint_timestamp_seconds",
    "When this node last signed a checkpoint of its audit chain (Unix time; 0: never)",
)


def watch(ctx: ServiceContext) -> None:
    metrics.watch(ctx, {"checkpoints": lambda: checkpoints(ctx)})


async def checkpoints(ctx: ServiceContext) -> None:
    row = await ctx.pool.fetchrow(
        """
        WITH last AS (SELECT max(seq) AS seq, max(at) AS at FROM audit.checkpoint)
        SELECT count(e.seq) AS unsigned,
               extract(epoch FROM now() - min(e.at)) AS oldest,
               extract(epoch FROM (SELECT at FROM last)) AS signed_at
        FROM audit.entry e
        WHERE e.seq > coalesce((SELECT seq FROM last), 0)
        """
    )
    assert row is not None
    UNSIGNED.set(row["unsigned"])
    UNSIGNED_AGE.set(max(float(row["oldest"] or 0), 0.0))
    LAST_CHECKPOINT.set(float(row["signed_at"] or 0))
