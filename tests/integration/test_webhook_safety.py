"""Webhooks that cannot be turned against the node, on real servers: the secret is sealed in
the database (and one from before sealing is sealed at start and still signs), the connection
goes to the address that was checked (no second resolution: DNS rebinding is closed), an
address that turned internal is not reached, and a redirect is not followed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import uvicorn
from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook

from deploy.ports import free_ports
from services.notifications import handlers
from services.notifications.webhook_channel import WebhookSender, sign
from shared import db
from shared.events import new_event_id
from tests.integration.notifications_node import (
    NodeFactory,
    NotifyingNode,
    changed,
    make_node,
    referral,
)
from tests.waiting import eventually

__all__ = ["make_node"]  # the fixture, used by name
STAFF = [("focal", "focal_point", "fr"), ("admin", "admin", "fr")]
HOST = "hooks.sanad.invalid"  # .invalid never resolves (RFC 6761): only the checked address


@dataclass
class Receiver:
    """A member system's endpoint on 127.0.0.1: keeps what it gets, answers ``answer``."""

    port: int
    answer: Response = field(default_factory=lambda: Response(status_code=204))
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(request: Request) -> Response:
            self.received.append((await request.body(), dict(request.headers)))
            return self.answer

        return app


@contextlib.asynccontextmanager
async def serving(*receivers: Receiver) -> AsyncIterator[None]:
    servers = [
        uvicorn.Server(uvicorn.Config(r.app(), host="127.0.0.1", port=r.port, log_level="warning"))
        for r in receivers
    ]
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    try:

        async def up() -> bool:
            return all(s.started for s in servers)

        await eventually(up, within=10, what="the receivers are up")
        yield
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)


class Resolver:
    """A DNS that answers ``first`` once, then ``later``, and counts the questions."""

    def __init__(self, first: list[str], later: list[str] | None = None) -> None:
        self.first, self.later = first, later if later is not None else first
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        assert host == HOST
        return self.first if self.asked == 1 else self.later


async def register(node: NotifyingNode, url: str) -> dict[str, Any]:
    async with node.client("admin") as client:
        created = await client.post("/webhooks", json={"url": url, "kinds": []})
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


async def delivered(receiver: Receiver) -> None:
    async def got() -> bool:
        return bool(receiver.received)

    await eventually(got, within=15, what="the delivery")


async def last_attempt(node: NotifyingNode) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def attempted() -> bool:
        async with node.client("admin") as client:
            log = (await client.get("/deliveries")).json()
        found[:] = log[0]["attempt_log"][-1:] if log else []
        return bool(found)

    await eventually(attempted, within=15, what="a delivery attempt")
    return found[0]


class TestSecretsAtRest:
    async def test_the_database_holds_no_secret_in_clear_and_the_delivery_verifies(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        receiver = Receiver(free_ports(1)[0])
        created = await register(node, f"http://127.0.0.1:{receiver.port}/relais")
        secret = created["secret"]
        assert secret.startswith("whsec_")
        pool = await db.create_pool(node.settings.database_url, max_size=1)
        try:
            row = await pool.fetchrow(
                "SELECT * FROM notifications.webhook WHERE id = $1", UUID(created["id"])
            )
        finally:
            await pool.close()
        assert row is not None and row["secret"] is None
        assert secret not in row["sealed_secret"] and secret[6:] not in row["sealed_secret"]
        async with serving(receiver):
            await node.publish(changed(referral(), "received"))
            await delivered(receiver)
        body, headers = receiver.received[0]
        assert Webhook(secret).verify(body, headers)["type"].startswith("relais.notification.")

    async def test_a_secret_from_before_sealing_is_sealed_at_start_and_still_signs(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        receiver = Receiver(free_ports(1)[0])
        old_secret = "an-old-token_urlsafe-secret-from-before-0003"
        pool = await db.create_pool(node.settings.database_url, max_size=1)
        try:
            webhook_id = UUID(new_event_id())
            await pool.execute(
                "INSERT INTO notifications.webhook (id, url, secret, created_by)"
                " VALUES ($1, $2, $3, 'admin')",
                webhook_id,
                f"http://127.0.0.1:{receiver.port}/relais",
                old_secret,
            )
            assert await handlers.seal_clear_secrets(node.notifier) == 1  # as at start
            row = await pool.fetchrow(
                "SELECT * FROM notifications.webhook WHERE id = $1", webhook_id
            )
        finally:
            await pool.close()
        assert row is not None and row["secret"] is None
        assert old_secret not in row["sealed_secret"]
        async with serving(receiver):
            await node.publish(changed(referral(), "received"))
            await delivered(receiver)
        body, headers = receiver.received[0]
        assert Webhook(old_secret.encode()).verify(body, headers)["specversion"] == "1.0"
        assert headers["x-relais-signature"] == sign(
            old_secret, headers["x-relais-timestamp"], body
        )


class TestTheAddressChecked:
    async def test_the_connection_goes_to_the_checked_address_without_resolving_again(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF)
        dns = Resolver(["127.0.0.1"])
        node.notifier.webhooks = WebhookSender(node.notifier.settings, resolve=dns)
        receiver = Receiver(free_ports(1)[0])
        await register(node, f"http://{HOST}:{receiver.port}/relais")
        assert dns.asked == 1
        async with serving(receiver):
            await node.publish(changed(referral(), "received"))
            await delivered(receiver)
        (_, headers), *_ = receiver.received
        assert headers["host"] == f"{HOST}:{receiver.port}"
        assert (await last_attempt(node))["outcome"] == "sent"
        assert dns.asked == 2  # the registration's check, then the send's: one each

    async def test_a_host_that_turns_internal_after_registration_is_not_reached(
        self, make_node: NodeFactory
    ) -> None:
        node = await make_node(STAFF, RELAIS_WEBHOOK_ALLOWED_NETWORKS='["127.0.0.0/8"]')
        dns = Resolver(["127.0.0.1"], later=["127.0.0.1", "10.0.0.7"])
        node.notifier.webhooks = WebhookSender(node.notifier.settings, resolve=dns)
        receiver = Receiver(free_ports(1)[0])
        await register(node, f"http://{HOST}:{receiver.port}/relais")
        async with serving(receiver):
            await node.publish(changed(referral(), "received"))
            attempt = await last_attempt(node)
        assert attempt["outcome"] == "failed"
        assert "internal address (10.0.0.7)" in attempt["detail"]
        assert receiver.received == []

    async def test_a_redirect_is_not_followed(self, make_node: NodeFactory) -> None:
        node = await make_node(STAFF)
        elsewhere = Receiver(free_ports(1)[0])
        redirecting = Receiver(
            free_ports(1)[0],
            answer=Response(
                status_code=307,
                headers={"Location": f"http://127.0.0.1:{elsewhere.port}/stolen"},
            ),
        )
        await register(node, f"http://127.0.0.1:{redirecting.port}/relais")
        async with serving(redirecting, elsewhere):
            await node.publish(changed(referral(), "received"))
            attempt = await last_attempt(node)
            await delivered(redirecting)
        assert attempt["outcome"] == "failed"
        assert attempt["detail"] == "answered 307; redirects are not followed"
        assert elsewhere.received == []
