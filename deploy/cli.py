"""The ``relais`` command line: the demo network, a node, one service, status, users, tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from deploy.cli_access import token_app, user_app
from deploy.cli_audit import audit_app
from deploy.cli_backup import backup_command, restore_command
from deploy.cli_clients import client_app
from deploy.cli_deadletters import deadletters_app
from deploy.cli_demo import demo_app
from deploy.cli_keys import node_forget_retired_keys, node_reseal, node_rotate_keys
from deploy.cli_network import hub_app, node_init, node_join, node_rekey
from deploy.cli_outbox import outbox_app
from deploy.cli_status import status

app = typer.Typer(
    help="Relais: case referral between the organisations of a network.", no_args_is_help=True
)
node_app = typer.Typer(help="Run this machine's node.", no_args_is_help=True)
app.add_typer(node_app, name="node")

app.add_typer(user_app, name="user", help="Staff users of a node.")
app.add_typer(token_app, name="token", help="API tokens for member systems.")
app.add_typer(client_app, name="client", help="Member systems' clients: API token and NATS user.")
app.add_typer(audit_app, name="audit", help="The node's tamper-evident audit log.")
app.add_typer(hub_app, name="hub")
node_app.command("init")(node_init)
node_app.command("join")(node_join)
node_app.command("rekey")(node_rekey)
node_app.command("rotate-keys")(node_rotate_keys)
node_app.command("reseal")(node_reseal)
node_app.command("forget-retired-keys")(node_forget_retired_keys)
app.add_typer(demo_app, name="demo")
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(outbox_app, name="outbox")


@node_app.command("run")
def node_run() -> None:
    """Run this node's services on one HTTP port, with settings from RELAIS_* variables."""
    from deploy.node import load_settings, serve

    serve(load_settings())


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="directory, referrals, notifications or audit")],
    port: Annotated[int | None, typer.Option(help="HTTP port (default RELAIS_HTTP_PORT)")] = None,
) -> None:
    """Run one service alone, on a port of its own."""
    from deploy.node import SERVICES, load_settings
    from deploy.node import serve as serve_node

    if service not in SERVICES:
        raise typer.BadParameter(f"choose one of {', '.join(SERVICES)}", param_hint="SERVICE")
    settings = load_settings(**({"http_port": port} if port else {}))
    serve_node(settings, [service])


app.command()(status)
app.command("backup")(backup_command)
app.command("restore")(restore_command)


if __name__ == "__main__":
    app()
