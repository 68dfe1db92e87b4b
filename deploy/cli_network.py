"""``relais hub init|admit`` and ``relais node init|join``: making a network and joining it.

The secretariat runs ``relais hub init`` once (the network CA, the hub's certificate, its
NATS users and first accounts file). A new organisation runs ``relais node init`` on its own
machine and sends the application it writes (public material only) to the secretariat, who
runs ``relais hub admit`` and sends back the credentials file; ``relais node join`` installs
it, and ``relais node run`` checks it at every start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError

from deploy.joining import (
    APPLICATION_FILE,
    BadLeafUrl,
    Hub,
    check_leaf_url,
    init_hub,
    init_node,
    install_credentials,
    issue_credentials,
    leaf_remote_conf,
    load_hub,
)
from shared.contracts.directory import LocalisedText, MembershipStatus, OrganisationPublished
from shared.crypto import NodeKeys
from shared.errors import DomainError
from shared.membership.joining import (
    NEW_NKEY_SEED_FILE,
    NKEY_SEED_FILE,
    Application,
    Credentials,
    KeyChange,
    load_or_create_nkey,
    make_key_change,
    nkey_public,
    read_application,
)
from shared.text import gettext as _

hub_app = typer.Typer(help="The secretariat's hub: its CA, and admitting new nodes.")
HUB_DIR, NODE_DIR = Path(".relais/hub"), Path(".relais/node")
KEY_CHANGE_FILE = "nkey-change.json"
# The options ``hub admit`` and ``hub renew`` share.
HubUrl = Annotated[str, typer.Option(help="the hub's Relais, e.g. http://127.0.0.1:8000")]
Token = Annotated[str, typer.Option(envvar="RELAIS_TOKEN", help="a coordinator's token")]
HubFolder = Annotated[Path, typer.Option("--dir", help="the hub's material")]
ValidDays = Annotated[float, typer.Option(help="how long the credentials hold")]
Out = Annotated[Path | None, typer.Option(help="where to write the credentials")]


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg="red")
    return typer.Exit(2)


@hub_app.command("init")
def hub_init(
    address: Annotated[str, typer.Option(help="host:port where leaves reach the hub")],
    folder: Annotated[Path, typer.Option("--dir", help="where the hub's material goes")] = HUB_DIR,
    domain: Annotated[str, typer.Option(help="the hub's JetStream domain")] = "hub",
    leaf_url: Annotated[
        list[str] | None,
        typer.Option(
            help="a hub server's leaf address for the credentials, e.g. tls://hub-2:7422;"
            " repeat it for each server of a hub cluster (default: tls://ADDRESS)"
        ),
    ] = None,
) -> None:
    """Make the network CA, the hub's TLS certificate, its NATS users and accounts file."""
    try:
        hub = init_hub(folder, address, domain=domain, leaf_urls=leaf_url or ())
    except BadLeafUrl as exc:
        raise _fail(
            _("relais hub init: %(url)s is not a hub leaf address (tls://host:port)")
            % {"url": str(exc)}
        ) from None
    typer.echo(_("Hub material in %(dir)s:") % {"dir": folder})
    for path in (hub.ca_file, hub.tls_cert, hub.tls_key, hub.accounts_file):
        typer.echo(f"  {path}")
    typer.echo(
        _(
            "Keep ca.key offline once the hub's certificate is made. Give the hub's nats-server"
            " the certificate and include accounts.conf; give the hub's Relais"
            " RELAIS_NATS_ACCOUNTS_FILE=%(accounts)s and RELAIS_NATS_SYSTEM_URL (secrets.json)."
        )
        % {"accounts": hub.accounts_file}
    )


@hub_app.command("admit")
def hub_admit(
    application: Annotated[Path, typer.Argument(help="the application file a node sent")],
    hub_url: HubUrl,
    token: Token,
    folder: HubFolder = HUB_DIR,
    valid_days: ValidDays = 365,
    out: Out = None,
) -> None:
    """Admit a node's organisation and write the credentials to send back to it."""
    try:
        checked = read_application(application.read_bytes())
    except OSError as exc:
        raise _fail(
            _("relais hub admit: cannot read %(path)s: %(error)s")
            % {"path": application, "error": exc.strerror}
        ) from None
    except DomainError as exc:
        raise _fail(
            _("relais hub admit: application refused: %(detail)s") % {"detail": exc.detail}
        ) from None
    hub = load_hub(folder)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=hub_url, headers=headers, timeout=30) as client:
        body = {"application": checked.model_dump(mode="json"), "valid_days": valid_days}
        for method, path, payload in (
            ("POST", "/api/v1/directory/applications", body),
            (
                "POST",
                f"/api/v1/directory/organisations/{checked.org_id}/membership",
                {"action": "admit"},
            ),
            ("GET", f"/api/v1/directory/organisations/{checked.org_id}/credentials", None),
        ):
            response = client.request(method, path, json=payload)
            if response.status_code >= 400:
                detail = response.json().get("detail", response.text)
                raise _fail(_("relais hub admit: the hub refused: %(detail)s") % {"detail": detail})
    target, credentials = _write_credentials(hub, response.json(), out)
    typer.echo(
        _("%(org)s admitted. Send %(file)s to its operator (valid until %(until)s).")
        % {"org": checked.org_id, "file": target, "until": credentials.expires_at.date()}
    )


@hub_app.command("renew")
def hub_renew(
    org: Annotated[str, typer.Argument(help="the organisation whose credentials to renew")],
    hub_url: HubUrl,
    token: Token,
    folder: HubFolder = HUB_DIR,
    valid_days: ValidDays = 365,
    out: Out = None,
    key_change: Annotated[
        Path | None,
        typer.Option(help="the node's key change file (relais node rekey): a new NATS key"),
    ] = None,
) -> None:
    """Renew an admitted organisation's credentials from today and write the file to send
    back to it: the same key (a node refused for expired credentials links again at once), or
    with --key-change its new one (the old key's link is cut at once)."""
    body: dict[str, Any] = {"valid_days": valid_days}
    if key_change is not None:
        try:
            body["key_change"] = KeyChange.model_validate_json(key_change.read_bytes()).model_dump(
                mode="json"
            )
        except (OSError, ValidationError) as exc:
            raise _fail(
                _("relais hub renew: cannot read %(path)s: %(error)s")
                % {"path": key_change, "error": exc}
            ) from None
    hub = load_hub(folder)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=hub_url, headers=headers, timeout=30) as client:
        response = client.post(f"/api/v1/directory/organisations/{org}/credentials", json=body)
    if response.status_code >= 400:
        detail = response.json().get("detail", response.text)
        raise _fail(_("relais hub renew: the hub refused: %(detail)s") % {"detail": detail})
    target, credentials = _write_credentials(hub, response.json(), out)
    typer.echo(
        _("%(org)s: credentials renewed until %(until)s. Send %(file)s to its operator.")
        % {"org": org, "file": target, "until": credentials.expires_at.date()}
    )


def _write_credentials(
    hub: Hub, issued: dict[str, Any], out: Path | None
) -> tuple[Path, Credentials]:
    """The credentials file for the organisation the hub's answer names (readable by its
    owner only: it is sent to the node, which keeps it beside its keys)."""
    credentials = issue_credentials(hub, issued, hub_org=issued["hub_org"])
    target = out or Path(f"{issued['org_id']}-credentials.json")
    target.write_text(credentials.model_dump_json(indent=2))
    target.chmod(0o600)
    return target, credentials


def node_init(
    org: Annotated[str, typer.Option(help="the organisation's id in the network")],
    hub: Annotated[
        str, typer.Option(help="the hub's address (host:port) given by the secretariat")
    ],
    folder: Annotated[Path, typer.Option("--dir", help="where the node's keys go")] = NODE_DIR,
    name: Annotated[str | None, typer.Option(help="the organisation's name")] = None,
    city: Annotated[str, typer.Option(help="a city code of the reference data")] = "rabat",
) -> None:
    """Make this node's keys, its settings file and its application to the network."""
    try:
        record = OrganisationPublished(
            org_id=org,
            version=1,
            name=LocalisedText(fr=name or org, ar="", en=""),
            kind="ngo",
            status=MembershipStatus.APPLICANT,
            city=city,
        )
    except ValidationError as exc:
        raise _fail(_("relais node init: %(error)s") % {"error": exc.errors()[0]["msg"]}) from None
    init_node(folder, record, hub)
    settings = folder / "node.env"
    if not settings.exists():
        settings.write_text(
            "\n".join(
                [
                    f"RELAIS_NODE_ID={org}",
                    f"RELAIS_ORG={org}",
                    "RELAIS_ROLE=member",
                    f"RELAIS_KEY_DIR={folder.resolve()}",
                    f"RELAIS_HUB_ADDRESS={hub}",
                    f"RELAIS_CREDENTIALS_FILE={(folder / 'credentials.json').resolve()}",
                    f"RELAIS_SECRET_KEY={secrets.token_hex(32)}",
                    "",
                ]
            )
        )
        settings.chmod(0o600)
    typer.echo(
        _("Send %(file)s to the secretariat; it holds no secret.")
        % {"file": folder / APPLICATION_FILE}
    )
    typer.echo(
        _("Settings: %(file)s (add RELAIS_NATS_URL and RELAIS_DATABASE_URL).") % {"file": settings}
    )


def node_join(
    credentials: Annotated[Path, typer.Argument(help="the credentials file the hub issued")],
    folder: Annotated[Path, typer.Option("--dir", help="the node's folder")] = NODE_DIR,
    hub: Annotated[
        list[str] | None,
        typer.Option(
            "--hub",
            help="a hub server's leaf address, e.g. tls://hub-2.example.org:7422; repeat it"
            " for each server of a hub cluster (default: the credentials' hub_leaf_urls)",
        ),
    ] = None,
) -> None:
    """Install the hub's credentials and write the leaf link's nats-server configuration."""
    try:
        issued = Credentials.model_validate_json(credentials.read_bytes())
        applied = Application.model_validate_json((folder / APPLICATION_FILE).read_bytes())
    except (OSError, ValidationError) as exc:
        raise _fail(_("relais node join: %(error)s") % {"error": exc}) from None
    current = nkey_public(load_or_create_nkey(folder))
    pending = folder / NEW_NKEY_SEED_FILE
    replacing = pending.exists() and issued.nkey == nkey_public(
        load_or_create_nkey(folder, NEW_NKEY_SEED_FILE)
    )
    if issued.org_id != applied.org_id or (issued.nkey != current and not replacing):
        raise _fail(
            _("relais node join: these credentials are not for this node (%(org)s)")
            % {"org": applied.org_id}
        )
    if issued.hub != applied.hub:
        raise _fail(
            _(
                "relais node join: this node applied to the hub %(ours)s, the credentials"
                " come from %(theirs)s"
            )
            % {"ours": applied.hub, "theirs": issued.hub}
        )
    if replacing:  # the hub took the new key: the old one is worthless from now on
        os.replace(pending, folder / NKEY_SEED_FILE)
    urls = hub or issued.hub_leaf_urls
    try:
        for url in urls:
            check_leaf_url(url)
    except BadLeafUrl as exc:
        raise _fail(
            _("relais node join: %(url)s is not a hub leaf address (tls://host:port)")
            % {"url": str(exc)}
        ) from None
    path, ca = install_credentials(folder, issued)
    seed = (folder / NKEY_SEED_FILE).read_text().strip()
    conf = folder / "leaf-remote.conf"
    conf.write_text(leaf_remote_conf(urls, nkey_seed=seed, ca_file=ca.resolve()))
    conf.chmod(0o600)
    typer.echo(
        _(
            "Credentials installed in %(file)s; the leaf link's configuration is %(conf)s"
            " (include it in the leafnodes block of the node's nats-server)."
        )
        % {"file": path, "conf": conf}
    )


def node_rekey(
    folder: Annotated[Path, typer.Option("--dir", help="the node's folder")] = NODE_DIR,
) -> None:
    """Make a new NATS key for this node and the signed request to send to the secretariat
    (its seed believed stolen, or routine rotation); the current key works until then."""
    try:
        applied = Application.model_validate_json((folder / APPLICATION_FILE).read_bytes())
    except (OSError, ValidationError) as exc:
        raise _fail(_("relais node rekey: %(error)s") % {"error": exc}) from None
    new = nkey_public(load_or_create_nkey(folder, NEW_NKEY_SEED_FILE))
    change = make_key_change(NodeKeys.load_or_create(folder), applied.org_id, new)
    target = folder / KEY_CHANGE_FILE
    target.write_text(change.model_dump_json(indent=2))
    typer.echo(
        _(
            "New NATS key made. Send %(file)s to the secretariat (relais hub renew"
            " --key-change); install the credentials it sends back with relais node join, then"
            " restart this node's nats-server."
        )
        % {"file": target}
    )
