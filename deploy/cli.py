"""The ``relais`` command line: the demo network, a node, one service, status, users, tokens."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from deploy.cli_access import token_app, user_app
from deploy.cli_audit import audit_app
from deploy.cli_network import hub_app, node_init, node_join
from deploy.demo import DemoPorts, demo_network, start_demo
from deploy.processes import StartupFailed

app = typer.Typer(
    help="Relais: case referral between the organisations of a network.", no_args_is_help=True
)
node_app = typer.Typer(help="Run this machine's node.", no_args_is_help=True)
app.add_typer(node_app, name="node")

app.add_typer(user_app, name="user", help="Staff users of a node.")
app.add_typer(token_app, name="token", help="API tokens for member systems.")
app.add_typer(audit_app, name="audit", help="The node's tamper-evident audit log.")
app.add_typer(hub_app, name="hub")
node_app.command("init")(node_init)
node_app.command("join")(node_join)

DEMO_ROOT = Path(".relais/demo")


@app.command()
def demo(
    root: Annotated[Path, typer.Option(help="where the demo keeps its data and logs")] = DEMO_ROOT,
    http_port: Annotated[int, typer.Option(help="the hub's HTTP port; members follow")] = 8000,
    nats_port: Annotated[int, typer.Option(help="the hub's NATS port; members follow")] = 4222,
) -> None:
    """Start a hub and three member organisations on this machine, until Ctrl-C."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ports = DemoPorts(
        http=http_port, nats=nats_port, monitor=nats_port + 4000, leaf=nats_port + 3200
    )
    asyncio.run(_run_demo(root, ports))


async def _run_demo(root: Path, ports: DemoPorts) -> None:
    network = demo_network(root, ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        starting = asyncio.create_task(start_demo(network, say=typer.echo))
        waiting = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if starting not in done:
            starting.cancel()
            return
        creds = starting.result()
        waiting.cancel()
        _print_demo(creds, root, time.monotonic() - started)
        await stop.wait()
        typer.echo("\nStopping…")
    except StartupFailed as exc:
        typer.secho(f"relais demo: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    finally:
        await network.stop()
        typer.echo("Stopped. Data kept in " + str(root) + "; run again to resume.")


def _print_demo(creds: dict[str, Any], root: Path, seconds: float) -> None:
    typer.secho(f"\nRelais demo network ready in {seconds:.1f}s\n", bold=True)
    for node_id, node in creds["nodes"].items():
        typer.secho(f"  {node_id:<12} {node['url']:<24} ({node['org']}, {node['role']})", bold=True)
        for user in node["users"]:
            typer.echo(
                f"      {user['role']:<12} {user['username']:<12} password {user['password']}"
            )
    typer.echo(f"\nCredentials and API tokens: {root / 'credentials.json'}")
    typer.echo(f"Logs: {root / 'logs'}")
    typer.echo("Press Ctrl-C to stop.")


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


@app.command()
def status(
    credentials: Annotated[Path, typer.Option(help="the demo's credentials file")] = DEMO_ROOT
    / "credentials.json",
    as_json: Annotated[bool, typer.Option("--json", help="output for scripts")] = False,
) -> None:
    """Readiness of every node of the demo network."""
    if not credentials.exists():
        typer.secho(
            f"relais status: no {credentials}; is `relais demo` running?", err=True, fg="red"
        )
        raise typer.Exit(2)
    nodes = json.loads(credentials.read_text())["nodes"]
    report = {}
    with httpx.Client(timeout=3) as client:
        for node_id, node in nodes.items():
            try:
                response = client.get(f"{node['url']}/readyz")
                report[node_id] = {"url": node["url"], **response.json()}
            except httpx.HTTPError as exc:
                report[node_id] = {"url": node["url"], "status": "unreachable", "error": str(exc)}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for node_id, state in report.items():
            colour = "green" if state["status"] == "ready" else "red"
            typer.secho(f"{node_id:<12} {state['url']:<24} {state['status']}", fg=colour)
            for check, ok in state.get("checks", {}).items():
                if not ok:
                    typer.echo(f"    {check}: failing")
    if any(state["status"] != "ready" for state in report.values()):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
