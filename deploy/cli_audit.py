"""``relais audit verify`` and ``relais audit prune``: check a node's audit chain against its
signed checkpoints (its own, and the hub's copies), and archive old records.

Messages follow the language of ``RELAIS_LANG`` (or ``LANG``): French, Arabic or English.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import httpx
import typer

from services.audit import retention, store, verification
from services.audit.domain import Checkpoint, Problem
from shared import db, i18n
from shared.errors import DomainError
from shared.i18n import N_

audit_app = typer.Typer(help="The node's tamper-evident audit log.", no_args_is_help=True)
DEMO_CREDENTIALS = Path(".relais/demo/credentials.json")

PROBLEMS = {
    Problem.MODIFIED: N_("Record %(seq)s was modified after it was written."),
    Problem.DELETED: N_("Record %(seq)s was deleted."),
    Problem.INSERTED: N_("Record %(seq)s was inserted: it does not follow the record before it."),
    Problem.REORDERED: N_("Record %(seq)s is out of order: it was written as record %(original)s."),
    Problem.TRUNCATED: N_("Records %(seq)s to %(end)s were cut off the end of the chain."),
    Problem.REWRITTEN: N_(
        "Record %(seq)s differs from its signed checkpoint: the records up to it were rewritten."
    ),
    Problem.BAD_CHECKPOINT: N_(
        "The checkpoint at record %(seq)s is not signed by this node's key."
    ),
}


def _(message: str) -> str:
    return i18n.translations(_language()).gettext(message)


def _language() -> str:
    for value in (os.environ.get("RELAIS_LANG"), os.environ.get("LANG")):
        if value and value[:2].lower() in i18n.SUPPORTED:
            return value[:2].lower()
    return i18n.DEFAULT


@dataclass(frozen=True)
class Target:
    """Where a node's chain is, and where the hub's copies of its checkpoints are."""

    node_id: str
    org: str
    database_url: str
    hub_url: str | None
    hub_token: str | None


def _from_credentials(path: Path, node_id: str) -> Target:
    if not path.exists():
        typer.secho(
            _("relais audit: no %(path)s; is `relais demo` running?") % {"path": path},
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    nodes = json.loads(path.read_text())["nodes"]
    if node_id not in nodes:
        typer.secho(
            _("relais audit: no node %(node)s; choose one of %(nodes)s")
            % {"node": node_id, "nodes": ", ".join(nodes)},
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    node = nodes[node_id]
    hub = next((n for n in nodes.values() if n["role"] == "secretariat"), None)
    token = None
    if hub is not None:
        token = next(
            (u["token"] for u in hub["users"] if u["role"] in ("auditor", "coordinator")), None
        )
    return Target(node_id, node["org"], node["database_url"], hub and hub["url"], token)


def _hub_checkpoints(target: Target) -> list[Checkpoint] | None:
    """The hub's copies of the node's checkpoints (already checked there), or None."""
    if not target.hub_url or not target.hub_token:
        return None
    try:
        response = httpx.get(
            f"{target.hub_url}/api/v1/audit/network/checkpoints",
            params={"org": target.org},
            headers={"Authorization": f"Bearer {target.hub_token}"},
            timeout=30,
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        typer.secho(
            _(
                "Warning: the hub's checkpoints could not be read (%(error)s); checking against"
                " this node's own."
            )
            % {"error": exc},
            err=True,
            fg="yellow",
        )
        return None
    return [
        Checkpoint(c["seq"], c["hash"], datetime.fromisoformat(c["at"]))
        for c in response.json()
        if c["node_id"] == target.node_id
    ]


async def _verify(target: Target, show_progress: bool) -> verification.Report:
    pool = await db.create_pool(target.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            keys = await verification.node_keys(conn, target.org)
            own = verification.signed_checkpoints(
                await store.own_checkpoints(conn),
                org=target.org,
                node_id=target.node_id,
                public_keys=keys,
            )
            points = own + (_hub_checkpoints(target) or [])
            total = await store.count_after(conn, (await store.anchor(conn)).seq)
            bar = None
            if show_progress and total > 50_000:
                bar = typer.progressbar(length=total, label=_("Verifying"), file=sys.stderr)
                bar.__enter__()
            done = 0

            def progress(checked: int, _total: int) -> None:
                nonlocal done
                if bar is not None:
                    bar.update(checked - done)
                done = checked

            try:
                return await verification.verify(conn, points, progress)
            finally:
                if bar is not None:
                    bar.__exit__(None, None, None)
    finally:
        await pool.close()


DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="RELAIS_DATABASE_URL",
        help="the node's PostgreSQL",
        show_default=False,
    ),
]


@audit_app.command("verify")
def verify(
    node: Annotated[
        str | None, typer.Option("--node", help="a node of the demo network (its credentials file)")
    ] = None,
    credentials: Annotated[
        Path, typer.Option(help="the demo's credentials file, for --node")
    ] = DEMO_CREDENTIALS,
    database_url: DatabaseUrl = None,
    org: Annotated[
        str | None, typer.Option(envvar="RELAIS_ORG", help="the node's organisation")
    ] = None,
    node_id: Annotated[
        str | None, typer.Option(envvar="RELAIS_NODE_ID", help="the node's id")
    ] = None,
    hub_url: Annotated[
        str | None, typer.Option(envvar="RELAIS_AUDIT_HUB_URL", help="the hub, for its checkpoints")
    ] = None,
    hub_token: Annotated[
        str | None, typer.Option(envvar="RELAIS_AUDIT_HUB_TOKEN", help="a hub auditor's token")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="output for scripts")] = False,
) -> None:
    """Recompute the node's audit chain, check it against the signed checkpoints, and name the
    first record that was modified, deleted, inserted, reordered or cut off. Exit 1 if any."""
    if node is not None:
        target = _from_credentials(credentials, node)
    elif database_url and org:
        target = Target(node_id or org, org, database_url, hub_url, hub_token)
    else:
        typer.secho(
            _("relais audit: give --node (demo) or --database-url and --org"), err=True, fg="red"
        )
        raise typer.Exit(2)
    try:
        report = asyncio.run(_verify(target, show_progress=not as_json))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        typer.secho(
            _("relais audit: cannot read the node's database: %(error)s") % {"error": error},
            err=True,
            fg="red",
        )
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"node": target.node_id, **report.as_json()}, indent=2))
    elif report.ok:
        typer.secho(
            _(
                "The audit chain of %(node)s verifies: %(count)s records (%(first)s to %(last)s),"
                " %(checkpoints)s checkpoints."
            )
            % {
                "node": target.node_id,
                "count": report.checked,
                "first": report.first_seq,
                "last": report.last_seq,
                "checkpoints": report.checkpoints,
            },
            fg="green",
        )
    else:
        finding = report.finding
        assert finding is not None
        typer.secho(
            _("The audit chain of %(node)s does NOT verify.") % {"node": target.node_id},
            fg="red",
            bold=True,
        )
        values: dict[str, Any] = {
            "seq": finding.seq,
            "original": finding.original_seq,
            "end": finding.end_seq,
        }
        typer.secho(_(PROBLEMS[finding.problem]) % values, fg="red")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("prune")
def prune(
    before: Annotated[
        datetime, typer.Option(help="archive records up to a checkpoint before this")
    ],
    archive: Annotated[Path, typer.Option(help="the folder the archive file is written to")],
    database_url: DatabaseUrl = None,
    org: Annotated[str, typer.Option(envvar="RELAIS_ORG", help="the node's organisation")] = "",
    node_id: Annotated[
        str | None, typer.Option(envvar="RELAIS_NODE_ID", help="the node's id")
    ] = None,
) -> None:
    """Archive the oldest records to a file and remove them, cutting at a signed checkpoint: the
    chain left still verifies from it."""
    if not database_url or not org:
        typer.secho(_("relais audit: give --database-url and --org"), err=True, fg="red")
        raise typer.Exit(2)

    async def main() -> retention.Pruned:
        pool = await db.create_pool(database_url, max_size=2)
        try:
            async with pool.acquire() as conn:
                return await retention.prune(
                    conn,
                    org=org,
                    node_id=node_id or org,
                    before=before if before.tzinfo else before.astimezone(),
                    archive_dir=archive,
                )
        finally:
            await pool.close()

    try:
        pruned = asyncio.run(main())
    except DomainError as error:
        typer.secho(f"relais audit: {error.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.secho(
        _("Archived %(count)s records to %(path)s; the chain now starts after record %(seq)s.")
        % {"count": pruned.archived, "path": pruned.archive, "seq": pruned.cut.seq},
        fg="green",
    )
