"""The ways out of the node: SMTP (aiosmtplib) and an SMS gateway over HTTP (webhooks:
``webhook_channel``).

Each sender raises ``SendFailed`` with a reason fit for the delivery log (no content, no
secret); the worker decides when to try again.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx

from services.notifications.settings import NotificationSettings


class SendFailed(Exception):
    """A delivery attempt did not succeed; the message says why, for the delivery log."""


# --- e-mail ---------------------------------------------------------------------------------


_local_hostname: str | None = None


async def local_hostname() -> str:
    """The name this node gives in its ``EHLO``: the machine's full name, looked up once (in a
    thread: it may ask the DNS) rather than by aiosmtplib for every mail."""
    global _local_hostname
    if _local_hostname is None:
        _local_hostname = await asyncio.to_thread(socket.getfqdn)
    return _local_hostname


@dataclass(frozen=True)
class Mailer:
    settings: NotificationSettings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        if s.smtp_host is None:
            raise SendFailed("no SMTP server is configured on this node")
        try:
            await aiosmtplib.send(
                message,
                local_hostname=await local_hostname(),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                start_tls=s.smtp_starttls,
                use_tls=s.smtp_tls,
                timeout=s.send_timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise SendFailed(f"SMTP: {type(exc).__name__}: {str(exc)[:200]}") from exc
        except (OSError, TimeoutError) as exc:
            raise SendFailed(f"SMTP server unreachable: {type(exc).__name__}") from exc


# --- SMS ------------------------------------------------------------------------------------


class SmsGateway(Protocol):
    """Sends one text message to one phone number (E.164)."""

    async def send(self, phone: str, text: str) -> None: ...


@dataclass(frozen=True)
class HttpSmsGateway:
    """A generic HTTP gateway: ``POST <url>`` with ``{"to": ..., "text": ...}`` and a bearer
    token; any 2xx answer is a success. Most SMS providers (or a small adapter in front of
    one) take this shape."""

    url: str
    token: str | None
    timeout: float

    async def send(self, phone: str, text: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    self.url, json={"to": phone, "text": text}, headers=headers
                )
        except httpx.HTTPError as exc:
            raise SendFailed(f"SMS gateway unreachable: {type(exc).__name__}") from exc
        if not response.is_success:
            raise SendFailed(f"SMS gateway answered {response.status_code}")


def sms_gateway(settings: NotificationSettings) -> SmsGateway | None:
    if settings.sms_gateway_url is None:
        return None
    return HttpSmsGateway(
        settings.sms_gateway_url, settings.sms_gateway_token, settings.send_timeout
    )
