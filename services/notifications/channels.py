"""The ways out of the node: SMTP (aiosmtplib), an SMS gateway over HTTP, and signed webhooks.

Each sender raises ``SendFailed`` with a reason fit for the delivery log (no content, no
secret); the worker decides when to try again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpx

from services.notifications.settings import NotificationSettings
from shared.errors import Invalid

SIGNATURE_HEADER = "X-Relais-Signature"
TIMESTAMP_HEADER = "X-Relais-Timestamp"
DELIVERY_HEADER = "X-Relais-Delivery"


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


# --- webhooks -------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` with the webhook's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def body_of(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def check_url(url: str) -> tuple[str, int]:
    """The host and port of a webhook URL, or ``Invalid`` naming ``url``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"not a URL: {exc}", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("a webhook URL is http(s)://host/path", field="url")
    if parts.username or parts.password:
        raise Invalid("put no credentials in a webhook URL; it is signed", field="url")
    if len(url) > 500:
        raise Invalid("a webhook URL is at most 500 characters", field="url")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _refused(address: str, allowed: Iterable[str]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    internal = (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )
    return internal and not any(ip in ipaddress.ip_network(n, strict=False) for n in allowed)


async def check_destination(url: str, settings: NotificationSettings) -> None:
    """Refuse a webhook URL that resolves to a loopback, link-local or private address (a
    server-side request forgery into the node's own network), unless the operator allowed
    that network; checked when the webhook is registered and again before every send."""
    host, port = check_url(url)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise Invalid(f"{host} does not resolve", field="url") from None
    for *_, sockaddr in found:
        if _refused(str(sockaddr[0]), settings.webhook_allowed_networks):
            raise Invalid(
                f"{host} resolves to an internal address ({sockaddr[0]}), which webhooks may "
                "not reach on this node",
                field="url",
            )


@dataclass(frozen=True)
class WebhookSender:
    settings: NotificationSettings

    async def send(self, url: str, secret: str, delivery_id: str, document: dict[str, Any]) -> None:
        try:
            await check_destination(url, self.settings)
        except Invalid as exc:
            raise SendFailed(exc.detail) from exc
        body = body_of(document)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            DELIVERY_HEADER: delivery_id,
            "User-Agent": "Relais-Webhooks/1",
        }
        try:
            async with httpx.AsyncClient(
                timeout=self.settings.send_timeout, follow_redirects=False
            ) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendFailed(f"unreachable: {type(exc).__name__}") from exc
        if not response.is_success:
            raise SendFailed(f"answered {response.status_code}")
