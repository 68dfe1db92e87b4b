"""``relais backup`` and ``relais restore``: a member node in one file, and back (deploy/backup.py
says what is in it and why the JetStream store is not)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from deploy.backup import BackupError, Node, backup, restore
from shared.i18n import N_
from shared.text import gettext as _

MESSAGES = {
    "exists": N_("%(path)s exists already: choose another name, or a folder"),
    "no_keys": N_("no key folder at %(path)s (RELAIS_KEY_DIR)"),
    "no_file": N_("no file at %(path)s"),
    "same_name": N_("two settings files are named %(name)s: give each a name of its own"),
    "database": N_("cannot reach the node's database: %(detail)s"),
    "not_a_node_database": N_("this database is not a Relais node's (no auth schema)"),
    "pg_dump": N_("pg_dump failed: %(detail)s"),
    "pg_restore": N_("pg_restore failed, nothing was restored: %(detail)s"),
    "not_a_backup": N_("this file is not a Relais backup"),
    "version": N_("this backup's format (version %(version)s) is not one this release reads"),
    "damaged": N_("the backup is damaged (%(name)s does not match its checksum): nothing restored"),
    "other_node": N_(
        "this backup is of the node %(theirs)s, not of this node (%(ours)s): nothing restored"
    ),
    "other_keys": N_(
        "%(path)s holds another key than the backup's: restore into an empty key folder"
    ),
    "settings_differ": N_("%(path)s differs from the backup's: move it aside first"),
    "jetstream_not_empty": N_(
        "the JetStream store %(path)s is not empty: the restored node needs an empty one"
        " (move it aside, with its nats-server stopped)"
    ),
    "running": N_(
        "the node is running: %(count)s other sessions use its database. Stop the node first"
    ),
    "database_not_empty": N_(
        "the database already holds data: restore into a new, empty database (createdb)"
    ),
}

DatabaseUrl = Annotated[
    str,
    typer.Option(envvar="RELAIS_DATABASE_URL", help="the node's PostgreSQL", show_default=False),
]
NodeId = Annotated[
    str, typer.Option(envvar="RELAIS_NODE_ID", help="this node's id", show_default=False)
]
Org = Annotated[
    str | None, typer.Option(envvar="RELAIS_ORG", help="its organisation (default: the node id)")
]
KeyDir = Annotated[Path, typer.Option(envvar="RELAIS_KEY_DIR", help="the node's key folder")]
PgBin = Annotated[
    Path | None,
    typer.Option(
        envvar="RELAIS_PG_BIN",
        help="the folder of pg_dump and pg_restore (default: the embedded PostgreSQL's)",
    ),
]


def _fail(command: str, error: BackupError) -> typer.Exit:
    message = _(MESSAGES[error.code]) % {k: str(v) for k, v in error.values.items()}
    typer.secho(f"relais {command}: {message}", err=True, fg="red")
    return typer.Exit(2 if error.code in ("database", "pg_dump", "pg_restore") else 1)


def backup_command(
    target: Annotated[Path, typer.Argument(help="a folder (a dated file is made in it) or a file")],
    database_url: DatabaseUrl,
    node_id: NodeId,
    org: Org = None,
    key_dir: KeyDir = Path(".relais/keys"),
    include: Annotated[
        list[Path] | None,
        typer.Option(help="a settings file to keep too, e.g. /etc/relais/node.env; repeatable"),
    ] = None,
    pg_bin: PgBin = None,
) -> None:
    """Back up this node: its database (pg_dump), its key folder and settings, in one file
    readable by you only. It holds the node's private keys: keep it encrypted, off the
    machine."""
    node = Node(node_id, org or node_id, database_url, key_dir)
    try:
        path, manifest = asyncio.run(backup(node, target, include=include or (), bin_dir=pg_bin))
    except BackupError as error:
        raise _fail("backup", error) from None
    typer.secho(
        _("Backup of %(node)s written to %(path)s (%(files)s files).")
        % {"node": node_id, "path": path, "files": len(manifest.checksums)},
        fg="green",
    )
    typer.echo(
        _(
            "It holds this node's private keys: keep it encrypted and away from this machine"
            " (e.g. gpg --symmetric). The JetStream store is not in it, on purpose"
            " (deploy/README.md, Backups)."
        )
    )


def restore_command(
    archive: Annotated[Path, typer.Argument(help="the file relais backup wrote")],
    database_url: DatabaseUrl,
    node_id: NodeId,
    org: Org = None,
    key_dir: KeyDir = Path(".relais/keys"),
    settings_dir: Annotated[
        Path | None,
        typer.Option(help="where the settings files kept with --include go (default: keys)"),
    ] = None,
    jetstream_dir: Annotated[
        Path | None,
        typer.Option(help="the node's JetStream store, checked to be empty"),
    ] = None,
    pg_bin: PgBin = None,
) -> None:
    """Restore this node from a backup, into an empty database and key folder, with its
    node process and nats-server stopped; then start them (an empty JetStream store)."""
    node = Node(node_id, org or node_id, database_url, key_dir)
    try:
        done = asyncio.run(
            restore(
                archive,
                node,
                settings_dir=settings_dir,
                jetstream_dir=jetstream_dir,
                bin_dir=pg_bin,
            )
        )
    except BackupError as error:
        raise _fail("restore", error) from None
    typer.secho(
        _("%(node)s restored from its backup of %(when)s: the database, %(keys)s key files.")
        % {"node": node_id, "when": done.manifest.created_at, "keys": len(done.keys)},
        fg="green",
    )
    for path in done.settings:
        typer.echo(_("Settings file restored: %(path)s") % {"path": path})
    typer.echo(
        _(
            "Start the node's nats-server with an empty JetStream store, then the node: it"
            " sends again what it had not sent, and receives what the hub holds for it."
        )
    )
