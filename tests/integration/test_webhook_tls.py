"""A webhook over HTTPS reaches the address that was checked and still checks the receiver's
certificate against the URL's host (sent as the TLS server name), not against the address."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook

from deploy.ports import free_ports
from services.notifications.channels import SendFailed
from services.notifications.settings import NotificationSettings
from services.notifications.webhook_channel import WebhookSender, cloud_event
from services.notifications.webhook_secrets import new_secret
from tests.waiting import eventually

HOST = "hooks.sanad.invalid"  # never resolves: only the checked address can be reached


def certificate(folder: Path, names: list[str]) -> tuple[Path, Path, x509.Certificate]:
    """A CA, and a server certificate it signs for ``names``: (cert file, key file, CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, ca


@asynccontextmanager
async def tls_receiver(
    port: int, cert_file: Path, key_file: Path, received: list[tuple[bytes, dict[str, str]]]
) -> AsyncIterator[None]:
    app = FastAPI()

    @app.post("/relais")
    async def hook(request: Request) -> Response:
        received.append((await request.body(), dict(request.headers)))
        return Response(status_code=204)

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def up() -> bool:
        return server.started

    try:
        await eventually(up, within=10, what="the TLS receiver is up")
        yield
    finally:
        server.should_exit = True
        await task


def sender(ca: x509.Certificate) -> WebhookSender:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == HOST
        return ["127.0.0.1"]

    trusted = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
    )
    settings = NotificationSettings(webhook_allowed_networks=["127.0.0.0/8"])
    return WebhookSender(settings, resolve=resolve, verify=trusted)


def event() -> dict[str, object]:
    return cloud_event(
        id="0190f0e0-0000-7000-8000-000000000001",
        kind="referral_received",
        source="relais://sanad/notifications",
        time=datetime.datetime.now(datetime.UTC),
        subject=None,
        data={"category": "legal_aid"},
    )


async def test_the_certificate_is_checked_against_the_urls_host(tmp_path: Path) -> None:
    cert_file, key_file, ca = certificate(tmp_path, [HOST])
    (port,) = free_ports(1)
    received: list[tuple[bytes, dict[str, str]]] = []
    secret = new_secret()
    async with tls_receiver(port, cert_file, key_file, received):
        await sender(ca).send(f"https://{HOST}:{port}/relais", secret, "d-1", event())
    ((body, headers),) = received
    assert headers["host"] == f"{HOST}:{port}"
    assert Webhook(secret).verify(body, headers)["data"] == {"category": "legal_aid"}


async def test_a_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    cert_file, key_file, ca = certificate(tmp_path, ["elsewhere.example"])
    (port,) = free_ports(1)
    received: list[tuple[bytes, dict[str, str]]] = []
    async with tls_receiver(port, cert_file, key_file, received):
        with pytest.raises(SendFailed, match="unreachable"):
            await sender(ca).send(f"https://{HOST}:{port}/relais", new_secret(), "d-2", event())
    assert received == []
