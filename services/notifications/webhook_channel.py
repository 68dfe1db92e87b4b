"""Webhooks out of the node: a CloudEvent in the HTTP binding's structured mode, signed per the
Standard Webhooks specification, sent to the address that was checked.

The address check (no loopback, link-local or private network unless the operator allows it)
resolves the host once; the connection then goes to one of those very addresses, with the
URL's host in ``Host`` and as the TLS server name (SNI and certificate check), so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot lead inside. No proxy
from the environment is used (it would resolve again), and redirects are never followed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from services.notifications.channels import SendFailed
from services.notifications.settings import NotificationSettings
from services.notifications.webhook_secrets import signing_key
from shared.errors import Invalid

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
# The headers of the release before (a bare HMAC over "<timestamp>.<body>"), kept for one more.
SIGNATURE_HEADER = "X-Relais-Signature"
TIMESTAMP_HEADER = "X-Relais-Timestamp"
DELIVERY_HEADER = "X-Relais-Delivery"

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses, as the system resolves them, each once, in the order given."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


@dataclass(frozen=True)
class Destination:
    """A checked webhook URL and the addresses its host resolved to, every one allowed."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # the path and query
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == default else f"{shown}:{self.port}"

    def url_at(self, address: str) -> str:
        shown = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{shown}:{self.port}{self.target}"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The release before's ``X-Relais-Signature``: ``sha256=<hex>`` of HMAC-SHA256 over
    ``<timestamp>.<body>`` with the webhook's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def body_of(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def cloud_event(
    *, id: str, kind: str, source: str, time: datetime, subject: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    """A notification as a CloudEvents 1.0 event (structured mode): its ``data`` is what may
    leave the node (never a referral's payload)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": f"relais.notification.{kind}.v1",
        "time": time.astimezone(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        event["subject"] = subject
    return event


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


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


@dataclass(frozen=True)
class WebhookSender:
    settings: NotificationSettings
    resolve: Resolver = field(default=system_resolver)
    verify: ssl.SSLContext | bool = True  # the CAs a receiver's certificate is checked against

    async def check(self, url: str) -> Destination:
        """Refuse a webhook URL whose host resolves to a loopback, link-local or private
        address (a server-side request forgery into the node's own network), unless the
        operator allowed that network; checked at registration and before every send."""
        host, port = check_url(url)
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = await self.resolve(host, port)
            except (socket.gaierror, UnicodeError):
                raise Invalid(f"{host} does not resolve", field="url") from None
            if not addresses:
                raise Invalid(f"{host} does not resolve", field="url")
        for address in addresses:
            if _refused(address, self.settings.webhook_allowed_networks):
                raise Invalid(
                    f"{host} resolves to an internal address ({address}), which webhooks may "
                    "not reach on this node",
                    field="url",
                )
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Destination(url, parts.scheme, host, port, target, tuple(addresses))

    async def send(self, url: str, secret: str, delivery_id: str, event: dict[str, Any]) -> None:
        try:
            destination = await self.check(url)
        except Invalid as exc:
            raise SendFailed(exc.detail) from exc
        body = body_of(event)
        now = time.time()
        timestamp = str(int(now))
        signature = Webhook(signing_key(secret)).sign(
            delivery_id, datetime.fromtimestamp(now, UTC), body.decode()
        )
        headers = {
            "Host": destination.host_header,
            "Content-Type": CONTENT_TYPE,
            "webhook-id": delivery_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            DELIVERY_HEADER: delivery_id,
            "User-Agent": "Relais-Webhooks/2",
        }
        extensions = {}
        if destination.scheme == "https" and _literal(destination.host) is None:
            extensions["sni_hostname"] = destination.host
        response = await self._post(destination, body, headers, extensions)
        if response.is_redirect:
            raise SendFailed(f"answered {response.status_code}; redirects are not followed")
        if not response.is_success:
            raise SendFailed(f"answered {response.status_code}")

    async def _post(
        self,
        destination: Destination,
        body: bytes,
        headers: dict[str, str],
        extensions: dict[str, Any],
    ) -> httpx.Response:
        """POST to each checked address in turn until one connects; never resolves again."""
        failure: Exception | None = None
        async with httpx.AsyncClient(
            timeout=self.settings.send_timeout,
            follow_redirects=False,
            trust_env=False,
            verify=self.verify,
        ) as client:
            for address in destination.addresses:
                try:
                    return await client.post(
                        destination.url_at(address),
                        content=body,
                        headers=headers,
                        extensions=extensions,
                    )
                except httpx.ConnectError as exc:
                    failure = exc
                except httpx.HTTPError as exc:
                    raise SendFailed(f"unreachable: {type(exc).__name__}") from exc
        raise SendFailed(f"unreachable: {type(failure).__name__}")
