"""``relais client ...``: member systems' clients of a node (an API token and a NATS nkey user
each), managed straight in the node's database; the running node applies every change to its
nats-server and its feed at once (services/auth/clients.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from deploy.cli_access import CLI_CREATOR, AsJson, DatabaseUrl, _print_json, _run
from services.auth import clients
from shared import db
from shared.auth.roles import Role
from shared.feed import FEED
from shared.settings import NodeRole

client_app = typer.Typer(
    help="Member systems' clients: API token and NATS user.", no_args_is_help=True
)


def _client_json(client: clients.Client) -> dict[str, Any]:
    return {
        "name": client.name,
        "org": client.org,
        "roles": sorted(client.roles),
        "token_id": client.token_id,
        "nkey": client.nkey,
        "inbox_prefix": client.inbox_prefix,
        "feed": {"stream": FEED, "consumer": client.name},
        "created_by": client.created_by,
        "created_at": client.created_at.isoformat(),
        "revoked_at": client.revoked_at.isoformat() if client.revoked_at else None,
    }


@client_app.command("create")
def client_create(
    name: Annotated[str, typer.Argument(help="the system's name: lower case, digits, _")],
    scopes: Annotated[
        list[Role], typer.Option("--scope", help="a role the system acts with (repeatable)")
    ],
    org: Annotated[
        str, typer.Option(envvar="RELAIS_ORG", help="the organisation the system acts for")
    ],
    database_url: DatabaseUrl,
    node_role: Annotated[
        NodeRole,
        typer.Option(
            "--node-role", envvar="RELAIS_ROLE", help="the node's role (the hub has none)"
        ),
    ] = NodeRole.MEMBER,
    hub_org: Annotated[
        str, typer.Option(envvar="RELAIS_HUB_ORG", help="the secretariat's organisation")
    ] = "secretariat",
    as_json: AsJson = False,
) -> None:
    """Create a member system's client; its API token and NATS nkey seed are printed this once.
    Member nodes only: the hub has no member-system clients."""
    on_hub = node_role is NodeRole.SECRETARIAT or org == hub_org

    async def create(pool: db.Pool) -> clients.CreatedClient:
        return await clients.create(pool, name, org, scopes, CLI_CREATOR, on_hub=on_hub)

    made = _run(database_url, create)
    if as_json:
        _print_json({**_client_json(made.client), "token": made.token, "nkey_seed": made.nkey_seed})
        return
    client = made.client
    typer.echo(
        f"Created client {client.name} for {client.org} ({', '.join(sorted(client.roles))})."
    )
    typer.echo(f"API token:       {made.token}")
    typer.echo(f"NATS nkey seed:  {made.nkey_seed}")
    typer.echo(f"NATS inbox:      {client.inbox_prefix}")
    typer.echo(f"Feed:            stream {FEED}, consumer {client.name}")
    typer.echo("Keep the token and the seed now: they are not shown again.", err=True)


@client_app.command("list")
def client_list(database_url: DatabaseUrl, as_json: AsJson = False) -> None:
    """The node's member-system clients, revoked ones included."""
    found = _run(database_url, clients.list_all)
    if as_json:
        _print_json([_client_json(client) for client in found])
        return
    for client in found:
        state = "revoked" if client.revoked_at else "active"
        typer.echo(
            f"{client.name:<32} {client.org:<12} {state:<8} {','.join(sorted(client.roles))}"
        )


@client_app.command("revoke")
def client_revoke(
    name: Annotated[str, typer.Argument(help="the client's name")],
    database_url: DatabaseUrl,
    as_json: AsJson = False,
) -> None:
    """Revoke a client: its token is refused, and the node cuts its NATS connections at once."""
    client = _run(database_url, lambda pool: clients.revoke(pool, name))
    if as_json:
        _print_json(_client_json(client))
    else:
        typer.echo(f"Revoked client {client.name}.")
