"""A node's running services: the bus, the node's streams, each service's pool, schema,
outbox relay and consumers, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared import db, inbox_rewind, metrics, telemetry
from shared.auth.throttle import Throttle
from shared.bus import Bus
from shared.crypto import KeyRing
from shared.federation import INBOX, fresh_sequence, node_streams, outbox_consumer
from shared.outbox import OutboxRelay
from shared.pruning import HOUR, Pruner
from shared.service import Service, ServiceContext
from shared.settings import NodeSettings

log = logging.getLogger(__name__)


@dataclass
class NodeRuntime:
    settings: NodeSettings
    services: Sequence[Service]
    bus: Bus | None = None
    contexts: dict[str, ServiceContext] = field(default_factory=dict)
    started: bool = False
    # One per node: a token's requests count against one budget over HTTP and NATS alike.
    throttle: Throttle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.settings)

    async def start(self) -> None:
        settings = self.settings
        names = "+".join(s.name for s in self.services)
        telemetry.setup(names, node_id=settings.node_id, otlp_endpoint=settings.otlp_endpoint)
        self.bus = await Bus.connect(
            settings.nats_url, org=settings.org, name=f"relais-{settings.node_id}-{names}"
        )
        for stream in node_streams(
            settings.org,
            hub_domain=settings.hub_domain,
            is_hub=settings.is_hub,
            outbox_first_seq=fresh_sequence(time.time_ns()),
        ):
            if (
                stream.name == INBOX
                and not settings.is_hub
                and await inbox_rewind.needs_rewind(self.bus)
            ):
                await inbox_rewind.start(
                    self.bus, stream, org=settings.org, hub_domain=settings.hub_domain
                )
                continue
            await self.bus.ensure_stream(stream)
        if not settings.is_hub:  # the hub's FROM_<org> sources the OUTBOX through it
            await self.bus.ensure_consumer(outbox_consumer(settings.org))
        keys = KeyRing(settings.key_dir)
        for service in self.services:
            pool = await db.create_pool(
                settings.database_url, max_size=settings.db_pool_max, service=service.name
            )
            await db.migrate(pool, service.name, [service.migrations] if service.migrations else [])
            context = ServiceContext(
                name=service.name,
                settings=settings,
                pool=pool,
                bus=self.bus,
                keys=keys,
                throttle=self.throttle,
            )
            relay = OutboxRelay(pool, self.bus, service.name, settings.database_url)
            context.background("outbox relay", relay.run)
            pruner = Pruner(pool, service.name, settings.event_retention_hours * HOUR)
            context.background("pruning", pruner.run)
            await service.start(context)
            self.contexts[service.name] = context
        self.started = True
        self.bus.supervisor.start(
            "metrics",
            lambda: metrics.poll(metrics.node_probes(self), every=settings.metrics_seconds),
        )
        log.info("node %s: %s started", settings.node_id, names)

    async def checks(self) -> dict[str, bool]:
        """What readiness depends on, each by name: the broker, each service's database, the
        consumers, and every background task (``task:<name>``: false while it is down or
        restarting too often)."""
        result = {"nats": self.bus is not None and self.bus.connected}
        result["consumers"] = self.started and self.bus is not None and self.bus.consumers_ready
        for name, context in self.contexts.items():
            result[f"database:{name}"] = await db.ping(context.pool)
        result["started"] = self.started
        if self.bus is not None:
            result.update(self.bus.supervisor.checks())
        for context in self.contexts.values():
            result.update(context.supervisor.checks())
        return result

    async def stop(self) -> None:
        if self.bus is not None:
            await self.bus.close()  # stop consuming first: nothing half-handled at exit
        for context in self.contexts.values():
            await context.supervisor.stop()
            try:
                await asyncio.wait_for(context.pool.close(), 10)
            except TimeoutError:  # a connection still held by an abandoned task
                context.pool.terminate()
        self.contexts.clear()
        self.started = False
