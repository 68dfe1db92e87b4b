"""The hub's and a new node's material for joining the network, on disk.

``init_hub`` (``relais hub init``): the network CA and the hub's leaf-port certificate
(deploy/tls.py), the passwords of the hub's own NATS users (``HUB`` for its services, ``SYS``
to reload its configuration), and a first, empty accounts file that the hub's directory
rewrites as organisations are admitted. ``init_node`` (``relais node init``): the node's keys
and its application. ``issue_credentials`` (``relais hub admit``): the credentials file.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deploy import tls
from shared.contracts.directory import OrganisationPublished, PublicKey
from shared.crypto import NodeKeys
from shared.federation import HUB_ACCOUNT
from shared.membership.accounts import render_accounts
from shared.membership.joining import (
    HUB_FILE,
    Application,
    Credentials,
    load_or_create_nkey,
    make_application,
    nkey_public,
)

SECRETS_FILE, ACCOUNTS_FILE = "secrets.json", "accounts.conf"
APPLICATION_FILE, CREDENTIALS_FILE, CA_FILE = (
    "application.json",
    "credentials.json",
    "network-ca.crt",
)


# What never crosses a leaf link, in either direction (deploy/nats/production/leaf.conf says why).
LEAF_DENIED = ["relais.local.>", "relais.cmd.>", "$JS.EVENT.>", "$JS.ACK.>"]
LEAF_SCHEMES = ("tls", "nats-leaf", "nats")


class BadLeafUrl(ValueError):
    """A hub leaf address that nats-server would not dial."""


def check_leaf_url(url: str) -> str:
    """``url`` if it names a scheme nats-server dials for a leaf link, a host and a port."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in LEAF_SCHEMES or not parts.hostname or port is None:
        raise BadLeafUrl(url)
    return url.strip()


def leaf_remote_conf(urls: Sequence[str], *, nkey_seed: str, ca_file: Path) -> str:
    """The ``remotes`` block of a member's nats-server: one remote with every hub server's leaf
    address, so that when the server it is linked to goes, it links to another of them."""
    if not urls:
        raise BadLeafUrl("")
    remote = {
        "urls": [check_leaf_url(url) for url in urls],
        "nkey": nkey_seed,
        "tls": {"ca_file": str(ca_file), "timeout": 5},
        "deny_exports": LEAF_DENIED,
        "deny_imports": LEAF_DENIED,
    }
    return f"remotes: [{json.dumps(remote, indent=2)}]\n"


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


@dataclass(frozen=True)
class Hub:
    """A hub's material: where it is reached, its domain, and its files."""

    folder: Path
    address: str
    leaf_urls: list[str]
    domain: str
    hub_password: str
    system_password: str

    @property
    def accounts_file(self) -> Path:
        return self.folder / ACCOUNTS_FILE

    @property
    def ca_file(self) -> Path:
        return self.folder / tls.CA_CERT

    @property
    def tls_cert(self) -> Path:
        return self.folder / tls.HUB_CERT

    @property
    def tls_key(self) -> Path:
        return self.folder / tls.HUB_KEY

    def client_url(self, host: str, port: int) -> str:
        return f"nats://{HUB_ACCOUNT.lower()}:{self.hub_password}@{host}:{port}"

    def system_url(self, host: str, port: int) -> str:
        return f"nats://sys:{self.system_password}@{host}:{port}"


def init_hub(
    folder: Path, address: str, *, domain: str = "hub", leaf_urls: Sequence[str] = ()
) -> Hub:
    """Make what is missing of the hub's material in ``folder``; keep what is there.

    ``leaf_urls``: every server of a hub cluster where leaves may link (the credentials carry
    them all, so a leaf fails over); by default the one ``address``."""
    urls = [check_leaf_url(url) for url in leaf_urls]  # refused before anything is made
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    host = address.rsplit(":", 1)[0] if ":" in address else address
    if not (folder / tls.CA_CERT).exists():
        tls.make_ca(folder)
    if not (folder / tls.HUB_CERT).exists():
        # Every host a leaf may dial must be in the certificate, or the leaf refuses the link.
        names = [host, *(urlsplit(url).hostname or "" for url in urls)]
        tls.issue_hub_certificate(folder, list(dict.fromkeys(names)))
    if not (folder / SECRETS_FILE).exists():
        passwords = {"hub": secrets.token_hex(24), "system": secrets.token_hex(24)}
        _write_private(folder / SECRETS_FILE, json.dumps(passwords))
    passwords = json.loads((folder / SECRETS_FILE).read_text())
    _write_private(
        folder / "users-hub.conf",
        f'users: [{{ user: "{HUB_ACCOUNT.lower()}", password: "{passwords["hub"]}" }}]\n',
    )
    _write_private(
        folder / "users-sys.conf",
        f'users: [{{ user: "sys", password: "{passwords["system"]}" }}]\n',
    )
    if not (folder / HUB_FILE).exists():
        described = {
            "address": address,
            "leaf_urls": urls or [f"tls://{address}"],
            "domain": domain,
        }
        (folder / HUB_FILE).write_text(json.dumps(described, indent=2))
    if not (folder / ACCOUNTS_FILE).exists():  # no member yet: the directory adds them
        (folder / ACCOUNTS_FILE).write_text(render_accounts([], hub_domain=domain))
    return load_hub(folder)


def load_hub(folder: Path) -> Hub:
    described = json.loads((folder / HUB_FILE).read_text())
    passwords = json.loads((folder / SECRETS_FILE).read_text())
    return Hub(
        folder=folder,
        address=described["address"],
        leaf_urls=list(described["leaf_urls"]),
        domain=described["domain"],
        hub_password=passwords["hub"],
        system_password=passwords["system"],
    )


def init_node(folder: Path, record: OrganisationPublished, hub: str) -> Application:
    """The node's keys and NATS key in ``folder`` (made once) and its application, written to
    ``folder/application.json``."""
    keys = NodeKeys.load_or_create(folder)
    nkey = nkey_public(load_or_create_nkey(folder))
    # The record carries the node's own public keys: the hub checks the signature with them.
    public = [PublicKey.model_validate(key) for key in keys.public_keys()]
    record = record.model_copy(update={"keys": public})
    application = make_application(keys, nkey, record, hub)
    (folder / APPLICATION_FILE).write_text(application.model_dump_json(indent=2))
    return application


def issue_credentials(hub: Hub, credential: dict[str, Any], *, hub_org: str) -> Credentials:
    """The credentials file's content for an admitted organisation (``credential``: the hub's
    ``GET …/organisations/{id}/credentials``)."""
    return Credentials(
        org_id=credential["org_id"],
        hub=hub.address,
        hub_leaf_urls=hub.leaf_urls,
        hub_domain=hub.domain,
        hub_org=hub_org,
        account=credential["account"],
        nkey=credential["nkey"],
        ca_certificate=hub.ca_file.read_text(),
        issued_at=credential["issued_at"],
        expires_at=credential["expires_at"],
    )


def install_credentials(folder: Path, credentials: Credentials) -> tuple[Path, Path]:
    """Put the credentials and the network CA beside the node's keys; returns their paths."""
    (folder / CA_FILE).write_text(credentials.ca_certificate)
    path = folder / CREDENTIALS_FILE
    _write_private(path, credentials.model_dump_json(indent=2))
    return path, folder / CA_FILE
