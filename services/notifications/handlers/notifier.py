"""The running notifications service (``Notifier``), held by its context, and the staff it
notifies."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.notifications.channels import Mailer, SmsGateway, sms_gateway
from services.notifications.domain import Channel, StaffMember
from services.notifications.live import Live
from services.notifications.messages import Writer
from services.notifications.settings import NotificationSettings
from services.notifications.webhook_channel import WebhookSender
from services.notifications.webhook_secrets import SecretSeal
from shared import zones
from shared.auth import list_users
from shared.errors import DomainError
from shared.service import ServiceContext

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Notifier:
    """The running service: its context, settings, channels and live wake-ups."""

    ctx: ServiceContext
    settings: NotificationSettings
    live: Live = field(default_factory=Live)
    clock: Callable[[], datetime] = utc_now
    jitter: Callable[[], float] = random.random
    sms: SmsGateway | None = None
    # The directory's category labels ({code: {fr, ar, en}}), asked once it answers.
    categories: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sms is None:
            self.sms = sms_gateway(self.settings)
        self.mailer = Mailer(self.settings)
        self.webhooks = WebhookSender(self.settings)
        self.seal = SecretSeal.from_node_secret(self.ctx.settings.secret_key)

    @property
    def available(self) -> frozenset[Channel]:
        channels = {Channel.IN_APP}
        if self.settings.mail_configured:
            channels.add(Channel.EMAIL)
        if self.sms is not None:
            channels.add(Channel.SMS)
        return frozenset(channels)

    def writer(self, lang: str, timezone: str | None = None) -> Writer:
        """A writer in ``lang``, its times in ``timezone`` (the reader's) or the node's zone."""
        node_zone = self.ctx.settings.timezone
        return Writer(
            lang,
            base_url=self.ctx.settings.base_url,
            timezone=timezone if timezone and zones.is_zone(timezone) else node_zone,
            categories=self.categories,
        )

    async def learn_categories(self, retry_every: float = 5.0) -> None:
        """Ask the node's directory for the categories' labels, until it answers."""
        while not self.categories:
            try:
                found = await self.ctx.bus.request("relais.cmd.directory.categories", {})
                self.categories = {str(code): dict(labels) for code, labels in found.items()}
            except DomainError as exc:
                log.info("notifications: category labels not available yet (%s)", exc.detail)
                await asyncio.sleep(retry_every)


def notifier_of(ctx: ServiceContext) -> Notifier:
    """The notifier of ``ctx``, which the service's start made; a context it did not start (a
    test's app) gets one with settings from the environment, kept with the context."""
    if not isinstance(ctx.state, Notifier):
        ctx.state = Notifier(ctx, NotificationSettings())
    return ctx.state


async def active_staff(n: Notifier) -> list[StaffMember]:
    return [
        StaffMember(u.username, u.role.value, u.language.value)
        for u in await list_users(n.ctx.pool)
        if not u.disabled
    ]
