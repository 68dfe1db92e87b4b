"""A node's credentials file, as the hub gives it: the directory's record of the node's NATS
key and validity, with the hub's public material (its address, leaf URLs, domain and the
network CA), read from the folder ``relais hub init`` made.

That folder is the parent of the accounts file the hub's directory rewrites
(``RELAIS_NATS_ACCOUNTS_FILE``). Only its public files are read: ``hub.json`` and the CA's
certificate, never the hub's passwords. The names are ``shared/membership/joining.py``'s, which the
launcher writes by; the dashboard does not import the launcher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.errors import Unavailable
from shared.membership.joining import CA_CERT, HUB_FILE, Credentials
from shared.settings import NodeSettings


def hub_folder(settings: NodeSettings) -> Path:
    """The hub's material folder; ``Unavailable`` on a node not configured as a hub."""
    if settings.nats_accounts_file is None:
        raise Unavailable("RELAIS_NATS_ACCOUNTS_FILE is not set: no hub material folder")
    return settings.nats_accounts_file.parent


def credentials_file(settings: NodeSettings, issued: dict[str, Any]) -> Credentials:
    """The credentials for the organisation ``issued`` names (the directory's answer to
    ``GET …/organisations/{id}/credentials`` or to a renewal)."""
    folder = hub_folder(settings)
    try:
        described = json.loads((folder / HUB_FILE).read_text())
        ca_certificate = (folder / CA_CERT).read_text()
        return Credentials(
            org_id=issued["org_id"],
            hub=described["address"],
            hub_leaf_urls=list(described["leaf_urls"]),
            hub_domain=described["domain"],
            hub_org=issued["hub_org"],
            account=issued["account"],
            nkey=issued["nkey"],
            ca_certificate=ca_certificate,
            issued_at=issued["issued_at"],
            expires_at=issued["expires_at"],
        )
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise Unavailable(f"the hub's material in {folder} cannot be read: {exc}") from None
