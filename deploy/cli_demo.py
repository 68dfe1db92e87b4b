"""``relais demo``: the demo network until Ctrl-C; ``relais demo stop|start <node>`` from a
second terminal takes one node off the network and brings it back (``deploy.demo_control``)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from deploy.demo import DemoPorts, demo_network, retire_earlier_data, start_demo
from deploy.demo_control import DemoControl, ask, is_running
from deploy.processes import StartupFailed
from shared.text import gettext as _

DEMO_ROOT = Path(".relais/demo")
demo_app = typer.Typer(
    help="The demo network: a hub and three member organisations on this machine."
)
Root = Annotated[Path, typer.Option(help="where the demo keeps its data and logs")]


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    root: Root = DEMO_ROOT,
    http_port: Annotated[int, typer.Option(help="the hub's HTTP port; members follow")] = 8000,
    nats_port: Annotated[int, typer.Option(help="the hub's NATS port; members follow")] = 4222,
) -> None:
    """Start a hub and three member organisations on this machine, until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ports = DemoPorts(
        http=http_port, nats=nats_port, monitor=nats_port + 4000, leaf=nats_port + 3200
    )
    if not is_running(root) and (aside := retire_earlier_data(root)) is not None:
        typer.echo(
            _(
                "The demo data in %(root)s was made by an earlier release of Relais, which"
                " cannot reuse it: moved to %(aside)s. Starting a new demo."
            )
            % {"root": root, "aside": aside}
        )
    asyncio.run(_run_demo(root, ports))


@demo_app.command("stop")
def demo_stop(
    node: Annotated[str, typer.Argument(help="hub, sanad, amal or jusoor")], root: Root = DEMO_ROOT
) -> None:
    """Take one node off the running demo (its node process and its nats-server)."""
    _control(root, {"do": "stop", "node": node})


@demo_app.command("start")
def demo_start(
    node: Annotated[str, typer.Argument(help="a node stopped with `relais demo stop`")],
    root: Root = DEMO_ROOT,
) -> None:
    """Bring a stopped node back; the demo's terminal tells how its backlog crosses."""
    _control(root, {"do": "start", "node": node})


def _control(root: Path, request: dict[str, Any]) -> None:
    try:
        answer = asyncio.run(ask(root, request))
    except OSError:
        typer.secho(
            _("No demo is running under %(root)s (start one with `relais demo`).") % {"root": root},
            err=True,
            fg="red",
        )
        raise typer.Exit(2) from None
    if not answer.get("ok"):
        typer.secho(str(answer.get("error")), err=True, fg="red")
        raise typer.Exit(1)
    typer.echo(
        _("%(node)s: %(state)s") % {"node": answer["node"], "state": _(str(answer["state"]))}
    )


async def _run_demo(root: Path, ports: DemoPorts) -> None:
    network = demo_network(root, ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    control = DemoControl(network, say=_say)
    try:
        starting = asyncio.create_task(start_demo(network, say=typer.echo))
        waiting = asyncio.create_task(stop.wait())
        done, _pending = await asyncio.wait(
            {starting, waiting}, return_when=asyncio.FIRST_COMPLETED
        )
        if starting not in done:
            starting.cancel()
            return
        creds = starting.result()
        waiting.cancel()
        await control.serve()
        _print_demo(creds, root, time.monotonic() - started)
        await stop.wait()
        typer.echo("\nStopping…")
    except StartupFailed as exc:
        typer.secho(f"relais demo: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    finally:
        await control.close()
        await network.stop()
        typer.echo("Stopped. Data kept in " + str(root) + "; run again to resume.")


def _say(line: str) -> None:
    typer.echo(f"[{time.strftime('%H:%M:%S')}] {line}")


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
    typer.echo(
        _(
            "To watch store-and-forward: `relais demo stop amal` in another terminal, send amal"
            " a referral, `relais status`, then `relais demo start amal`."
        )
    )
    typer.echo("Press Ctrl-C to stop.")
