"""Who may connect to a node's own nats-server, and to what: the users file the node writes.

Two kinds of client log in. The node's services, with the user and password of their
``RELAIS_NATS_URL``, may do anything. Each member-system client logs in with its nkey (the
server holds only the public half; the seed never crosses the wire, nats-server checks a
signature of its challenge) and may only:

- publish requests on ``relais.cmd.>``, with replies on its own inbox ``_INBOX.<client>.>``
  (nats-py ``inbox_prefix``, nats.js ``inboxPrefix``), the only subjects it may subscribe to;
- use its own feed consumer (``shared.feed.api_subjects``): nothing of ``relais.net.>``,
  ``relais.local.>``, ``LOCAL``, ``INBOX`` or ``OUTBOX``, no other JetStream API.

Anything else is refused by the server with a permissions violation on the wire. The node
rewrites the file whenever its clients change and reloads the server through its system
account: a removed client's connections are closed by the reload itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nats

from shared import feed

log = logging.getLogger(__name__)

SERVICES_USER = "relais"
NATS_USERS_FILE = "nats-users.conf"  # beside the node's keys
NATS_SECRETS_FILE = "nats-secrets.json"


class NatsUsersError(RuntimeError):
    """The node's nats-server could not be told about its clients."""


@dataclass(frozen=True)
class ClientUser:
    """A member-system client as its node's nats-server knows it."""

    name: str
    nkey: str  # the public key, U…


def inbox_prefix(client: str) -> str:
    return f"_INBOX.{client}"


def permissions(client: str) -> dict[str, object]:
    return {
        "publish": {"allow": ["relais.cmd.>", *feed.api_subjects(client)]},
        "subscribe": {"allow": [f"{inbox_prefix(client)}.>"]},
    }


def render(services_user: str, services_password: str, clients: Iterable[ClientUser]) -> str:
    """The users file (JSON values are valid nats-server configuration)."""
    lines = [
        "# Who may connect to this node's nats-server. Written by the node (shared/nats_users.py)",
        "# from its database at start and whenever a member-system client is created or",
        "# revoked: edits here are overwritten.",
        "authorization {",
        "  users: [",
        f"    {{user: {json.dumps(services_user)}, password: {json.dumps(services_password)}}}",
    ]
    for client in sorted(clients, key=lambda c: c.name):
        rights = json.dumps(permissions(client.name))
        lines.append(f"    {{nkey: {json.dumps(client.nkey)}, permissions: {rights}}}")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def services_login(nats_url: str) -> tuple[str, str]:
    """The services' user and password, from the first address of their ``RELAIS_NATS_URL``."""
    parts = urlsplit(nats_url.split(",")[0].strip())
    if not parts.username or not parts.password:
        raise NatsUsersError("RELAIS_NATS_URL names no user and password for the node's services")
    return parts.username, parts.password


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".new")
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    staged.replace(path)  # the server never reads half a file
    return True


async def reload(system_url: str) -> None:
    """Reload the node's nats-server (its own, the one its system account user is on)."""
    try:
        system = await nats.connect(system_url, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:
        raise NatsUsersError(f"cannot reach the nats-server's system account: {exc}") from exc
    try:
        server_id = system._server_info["server_id"]
        reply = await system.request(f"$SYS.REQ.SERVER.{server_id}.RELOAD", b"", timeout=10)
        error = json.loads(reply.data).get("error")
        if error:
            raise NatsUsersError(f"nats-server refused its new users file: {error}")
    finally:
        await system.close()
    log.info("nats: users reloaded")


def load_or_create_nats_secrets(folder: Path) -> dict[str, str]:
    """The passwords of a node's services' user and of its system account's user, made once in
    ``folder`` (readable by this user only)."""
    path = folder / NATS_SECRETS_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        made = {"services": secrets.token_hex(24), "system": secrets.token_hex(24)}
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(json.dumps(made))
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded
