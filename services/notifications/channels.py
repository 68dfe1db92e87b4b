"""The ways out of the node: SMTP (aiosmtplib) and an SMS gateway over HTTP (webhooks:
``webhook_channel``).

Each sender raises ``SendFailed`` with a reason fit for the delivery log (no content, no
secret); the worker decides when to try again.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from email.message import Message
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


@dataclass
class Mailer:
    """Sends mail over a few SMTP connections kept open between messages.

    A connection, its ``EHLO``, its TLS handshake and its login for every mail were most of
    what a node spent sending one (``make bench``'s profile of the receiving node). Each kept
    connection carries one mail at a time; the worker sends up to a batch at once, so at most
    ``connections`` are open together. A connection that failed in any way is closed, never
    reused; one that had been waiting and is found closed by the server is opened again once
    for the same mail (the server took nothing on a connection it had dropped)."""

    settings: NotificationSettings
    connections: int = 4
    idle_for: float = 30.0  # seconds: a connection unused for longer is closed, not trusted
    _idle: list[tuple[float, aiosmtplib.SMTP]] = field(default_factory=list)
    _slots: asyncio.Semaphore | None = None

    async def send(self, message: Message) -> None:
        s = self.settings
        if s.smtp_host is None:
            raise SendFailed("no SMTP server is configured on this node")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.connections)
        async with self._slots:
            try:
                await self._send(message)
            except aiosmtplib.SMTPException as exc:
                raise SendFailed(f"SMTP: {type(exc).__name__}: {str(exc)[:200]}") from exc
            except (OSError, TimeoutError) as exc:
                raise SendFailed(f"SMTP server unreachable: {type(exc).__name__}") from exc

    async def _send(self, message: Message) -> None:
        kept = self._kept()
        if kept is not None:
            try:
                await kept.send_message(message)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                _close(kept)  # dropped while it waited: a new one, below
            except BaseException:
                _close(kept)
                raise
            else:
                self._idle.append((time.monotonic(), kept))
                return
        client = await self._connect()
        try:
            await client.send_message(message)
        except BaseException:
            _close(client)
            raise
        self._idle.append((time.monotonic(), client))

    def _kept(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            since, client = self._idle.pop()
            if client.is_connected and now - since < self.idle_for:
                return client
            _close(client)
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            local_hostname=await local_hostname(),
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=s.smtp_starttls,
            use_tls=s.smtp_tls,
            timeout=s.send_timeout,
        )
        await client.connect()
        return client

    def close(self) -> None:
        """Close the kept connections (the service stops)."""
        while self._idle:
            _close(self._idle.pop()[1])


def _close(client: aiosmtplib.SMTP) -> None:
    # No QUIT: the connection is dropped either way, and a server that hangs must not hold us.
    client.close()


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
