"""A notifications node for tests, on real servers: its own nats-server (so no other test's
node consumes its events), a fresh database, the service served by uvicorn in this process,
a real SMTP server (aiosmtpd) catching its mail, and staff with tokens."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.js.api import StreamConfig

from deploy import nats_server
from deploy.nats_config import NatsServerSpec
from deploy.node import build_app
from deploy.ports import free_ports
from deploy.processes import Supervisor
from services.notifications.handlers import Notifier, notifier_of
from shared import db
from shared.auth import add_user, issue_access_token
from shared.bus import Bus
from shared.contracts.referrals import (
    Box,
    ReferralChanged,
    ReferralDeadline,
    ReferralView,
    Status,
    Urgency,
)
from shared.events import CloudEvent, make_event, new_event_id, registry
from shared.settings import DEMO_SECRET, NodeRole, NodeSettings
from tests.waiting import eventually

PASSWORD = "a-long-test-password"


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(message)
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@dataclass
class NotifyingNode:
    url: str
    settings: NodeSettings
    bus: Bus
    app: Any
    mailbox: Mailbox
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def notifier(self) -> Notifier:
        return notifier_of(self.app.state.contexts["notifications"])

    def client(self, username: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[username]}"} if username else {}
        return httpx.AsyncClient(
            base_url=f"{self.url}/api/v1/notifications", headers=headers, timeout=10
        )

    async def publish(self, event: CloudEvent, *, msg_id: str | None = None) -> None:
        """Publish on the event's local subject; ``msg_id`` other than the event's id makes
        the broker take a repeat (as a replay after its duplicate window would)."""
        subject = registry[event.type].subject(service="referrals")
        headers = {"Nats-Msg-Id": msg_id or event.id}
        await self.bus.js.publish(subject, event.to_json(), headers=headers)


def referral(
    *,
    box: Box = Box.INBOX,
    urgency: Urgency = Urgency.ROUTINE,
    category: str = "legal_aid",
    status: Status = Status.RECEIVED,
    created_by: str | None = None,
) -> ReferralView:
    now = datetime.now(UTC)
    return ReferralView(
        referral_id=new_event_id(),
        box=box,
        from_org="amal" if box is Box.INBOX else "sanad",
        to_org="sanad" if box is Box.INBOX else "amal",
        category=category,
        urgency=urgency,
        status=status,
        created_by=created_by,
        acknowledge_by=now + timedelta(hours=4),
        answer_by=now + timedelta(hours=24),
    )


def changed(view: ReferralView, change: str, **leak: str) -> CloudEvent:
    """A ``ReferralChanged`` event; ``leak`` adds fields no contract has (a canary)."""
    event = make_event(
        ReferralChanged(referral=view, change=change, by_org=view.from_org, at=datetime.now(UTC)),
        source="relais://sanad/referrals",
        subject=view.referral_id,
    )
    return event.model_copy(update={"data": {**event.data, **leak}})


def deadline(view: ReferralView, kind: str = "breach") -> CloudEvent:
    return make_event(
        ReferralDeadline(
            referral=view, deadline="acknowledge", kind=kind, due_at=view.acknowledge_by
        ),
        source="relais://sanad/referrals",
        subject=view.referral_id,
    )


async def start_nats(root: Path, supervisor: Supervisor, domain: str) -> str:
    client, monitor, leaf = free_ports(3)
    spec = NatsServerSpec(
        name=f"notif-{domain}",
        domain=domain,
        client_port=client,
        monitor_port=monitor,
        store_dir=root / "nats",
        leaf_port=leaf,
    )
    await supervisor.start(nats_server.process(spec, config_dir=root, log_dir=root))
    return spec.client_url


NodeFactory = Callable[..., Awaitable[NotifyingNode]]


@pytest.fixture
async def make_node(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[NodeFactory]:
    """Starts one node; call it with the staff to create as ``(username, role, language)``."""
    supervisor = Supervisor()
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    controllers: list[Controller] = []
    buses: list[Bus] = []

    async def start(
        staff: list[tuple[str, str, str]], *, hub: bool = False, **env: str
    ) -> NotifyingNode:
        (smtp_port, http_port) = free_ports(2)
        mailbox = Mailbox()
        controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        controllers.append(controller)
        defaults = {
            "RELAIS_SMTP_HOST": "127.0.0.1",
            "RELAIS_SMTP_PORT": str(smtp_port),
            "RELAIS_MAIL_FROM": "relais@sanad.example",
            "RELAIS_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',
            "RELAIS_RETRY_BASE": "0.2",
            "RELAIS_RETRY_CAP": "0.5",
            "RELAIS_WORKER_POLL": "0.5",
        }
        for name, value in {**defaults, **env}.items():
            monkeypatch.setenv(name, value)
        org = "secretariat" if hub else "sanad"
        node_id = "hub" if hub else "sanad"
        nats_url = await start_nats(tmp_path, supervisor, node_id)
        settings = NodeSettings(
            node_id=node_id,
            org=org,
            role=NodeRole.SECRETARIAT if hub else NodeRole.MEMBER,
            nats_url=nats_url,
            database_url=database_url,
            secret_key=DEMO_SECRET,
            demo=True,
            http_port=http_port,
            public_url=f"https://{org}.relais.example",
            key_dir=tmp_path / "keys",
        )
        pool = await db.create_pool(database_url, max_size=2)
        tokens = {}
        try:
            for username, role, language in staff:
                await add_user(pool, username, PASSWORD, role, language=language)
                tokens[username] = await issue_access_token(pool, username, timedelta(hours=1))
        finally:
            await pool.close()
        bus = await Bus.connect(nats_url, org=org, name="test-publisher")
        buses.append(bus)
        if hub:  # the hub's INBOX sources its own TO_<org>: the test stands in for ROUTER
            await bus.ensure_stream(
                StreamConfig(name=f"TO_{org}", subjects=[f"relais.net.amal.{org}.>"])
            )
        app = build_app(settings, ["notifications"])
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=http_port,
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
        servers.append((server, asyncio.create_task(server.serve())))
        url = f"http://127.0.0.1:{http_port}"

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=1) as client:
                try:
                    return (await client.get(f"{url}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

        await eventually(ready, within=30, what="the notifications node is ready")
        return NotifyingNode(url, settings, bus, app, mailbox, tokens)

    yield start
    for bus in buses:
        await bus.close()
    for server, task in servers:
        server.should_exit = True
        await task
    for controller in controllers:
        controller.stop()
    await supervisor.stop_all()


async def publish_net(node: NotifyingNode, event: CloudEvent, *, sender: str) -> None:
    """Publish a network event from ``sender`` (amal, on a hub node) to the node's
    organisation, as the hub's ROUTER would."""
    subject = registry[event.type].subject(sender=sender, recipient=node.settings.org)
    await node.bus.js.publish(subject, event.to_json(), headers={"Nats-Msg-Id": event.id})
