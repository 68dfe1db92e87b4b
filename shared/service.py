"""What a service is to the node that runs it: a name, a router, migrations, and a start-up.

A service module builds one ``Service``; the node (or ``relais serve <service>``) runs it with
a ``ServiceContext``: its own pool on its own schema, the node's bus, its outbox relay.
Services never import each other; this descriptor is how the node composes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from shared import outbox
from shared.bus import Bus, Delivery, Handler, Subscription
from shared.crypto import KeyRing, NodeKeys
from shared.db import Connection, Pool
from shared.errors import Unavailable
from shared.events import CloudEvent, Payload, make_event, registry
from shared.settings import NodeSettings
from shared.supervision import Supervisor, Work

if TYPE_CHECKING:  # shared.auth imports this module
    from shared.auth.throttle import Throttle


@dataclass
class ServiceContext:
    """Everything a running service uses: settings, its database schema, the bus."""

    name: str
    settings: NodeSettings
    pool: Pool
    bus: Bus
    # The node's (a ring read again when the key folder changes); None only in tests of a
    # service that signs nothing.
    keys: KeyRing | NodeKeys | None = None
    supervisor: Supervisor = field(default_factory=Supervisor)  # its background work
    # What the service's start builds for its handlers and routes to share (notifications: its
    # notifier); held here, not in a module registry, so that two nodes in one process never
    # see each other's and it goes when the context does.
    state: object | None = None
    # The node's request budgets per token, which its HTTP API and its NATS commands share
    # (None in tests of a service that answers no command).
    throttle: Throttle | None = None

    @property
    def schema(self) -> str:
        return self.name

    def node_keys(self) -> NodeKeys:
        """The node's keys as they are now (one snapshot: sign and name the key with it);
        ``Unavailable`` (retried, 503) in a service started without them, rather than an
        ``AttributeError`` deep in sealing or opening a referral."""
        if self.keys is None:
            raise Unavailable(f"the {self.name} service runs without the node's keys")
        return self.keys.current() if isinstance(self.keys, KeyRing) else self.keys

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` of what this service emits."""
        return f"relais://{self.settings.node_id}/{self.name}"

    def sending(self, payload: Payload, *, to: str, about: str | None = None) -> outbox.Outgoing:
        """A network event for organisation ``to`` (or ``all``), for ``send`` or ``write``;
        ``about`` is the aggregate's id (no personal data)."""
        subject = registry.for_payload(type(payload)).subject(
            sender=self.settings.org, recipient=to
        )
        return subject, make_event(payload, source=self.source, subject=about)

    def emitting(self, payload: Payload, *, about: str | None = None) -> outbox.Outgoing:
        """An event for this node's other services (``relais.local.<service>.<event>``), for
        ``emit`` or ``write``."""
        subject = registry.for_payload(type(payload)).subject(service=self.name)
        return subject, make_event(payload, source=self.source, subject=about)

    async def send(
        self, conn: Connection, payload: Payload, *, to: str, about: str | None = None
    ) -> CloudEvent:
        """Put a network event for organisation ``to`` (or ``all``) in this service's outbox,
        inside the caller's transaction; ``about`` is the aggregate's id (no personal data)."""
        subject, event = self.sending(payload, to=to, about=about)
        await outbox.add(conn, self.schema, subject, event)
        return event

    async def emit(self, conn: Connection, payload: Payload, *, about: str | None = None) -> None:
        """Put an event for this node's other services (``relais.local.<service>.<event>``)
        in this service's outbox, inside the caller's transaction."""
        await outbox.add(conn, self.schema, *self.emitting(payload, about=about))

    async def write(self, conn: Connection, *events: outbox.Outgoing) -> None:
        """Put several events in this service's outbox in one statement, in this order, inside
        the caller's transaction (``sending``, ``emitting``, ``audit_trail.entry``)."""
        await outbox.add_all(conn, self.schema, events)

    def bound(self, handler: Callable[..., Awaitable[None]]) -> Handler:
        """An event handler of this service, ``handler(ctx, event, payload, delivery)``, as the
        bus calls it."""

        async def handle(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            await handler(self, event, payload, delivery)

        return handle

    async def subscribe(self, subscription: Subscription) -> None:
        await self.bus.subscribe(subscription)

    def background(self, name: str, work: Work) -> None:
        """Run ``work()`` for as long as the service runs, restarted with back-off if it fails
        (``work`` makes a fresh coroutine at each start: ``lambda: clock.run(ctx)``)."""
        self.supervisor.start(f"{self.name}: {name}", work)


@dataclass(frozen=True)
class Service:
    """A deployable service: mounted under ``/api/v1/<name>``, owning schema ``<name>``."""

    name: str
    router: APIRouter
    migrations: Path | None
    start: Callable[[ServiceContext], Awaitable[None]]
    pages: APIRouter | None = None  # web pages, mounted at the root (the dashboard's)
    # What the service POSTs to member systems, documented as OpenAPI 3.1 ``webhooks``.
    webhooks: APIRouter | None = None


def service_context(name: str) -> Callable[[Request], Awaitable[ServiceContext]]:
    """A FastAPI dependency giving a route its service's running context: ``context_of``,
    asynchronous because FastAPI runs a plain function dependency in its thread pool, a thread
    hop for every request that needs none."""
    of = context_of(name)

    async def dependency(request: Request) -> ServiceContext:
        return of(request)

    return dependency


def context_of(name: str) -> Callable[[Request], ServiceContext]:
    """A FastAPI dependency giving a route its service's running context."""

    def dependency(request: Request) -> ServiceContext:
        contexts: dict[str, ServiceContext] = request.app.state.contexts
        return contexts[name]

    return dependency
