"""``relais node rotate-keys``: new X25519 and Ed25519 pairs for the organisation, published
through the hub as its own signed record change (services/directory/rotation.py)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from pydantic import ValidationError

from deploy.joining import CREDENTIALS_FILE
from services.directory import rotation
from shared import db
from shared.contracts.directory import PublicKey
from shared.errors import DomainError
from shared.membership.joining import Credentials
from shared.text import gettext as _

NODE_DIR = Path(".relais/node")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg="red")
    return typer.Exit(2)


def node_rotate_keys(
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            envvar="RELAIS_DATABASE_URL",
            help="the node's PostgreSQL",
            show_default=False,
        ),
    ],
    folder: Annotated[
        Path, typer.Option("--dir", envvar="RELAIS_KEY_DIR", help="the node's key folder")
    ] = NODE_DIR,
    overlap_days: Annotated[
        float,
        typer.Option(
            envvar="RELAIS_KEY_OVERLAP_DAYS",
            min=0,
            help="how long the old keys still hold, for the envelopes already on their way",
        ),
    ] = 7.0,
    credentials: Annotated[
        Path | None,
        typer.Option(
            envvar="RELAIS_CREDENTIALS_FILE",
            help="the credentials the hub issued (default: credentials.json in the key folder)",
            show_default=False,
        ),
    ] = None,
    revoke_old: Annotated[
        bool,
        typer.Option(
            "--revoke-old", help="a key is believed stolen: the old keys end now, not later"
        ),
    ] = False,
) -> None:
    """Make new key pairs for the organisation and send them to the hub to publish; the node
    signs with them once they are published, and keeps the old ones to open what was sealed
    for them."""
    try:
        issued = Credentials.model_validate_json(
            (credentials or folder / CREDENTIALS_FILE).read_bytes()
        )
    except (OSError, ValidationError) as exc:
        raise _fail(_("relais node rotate-keys: %(error)s") % {"error": exc}) from None

    async def main() -> list[PublicKey]:
        pool = await db.create_pool(database_url, max_size=1)
        try:
            async with pool.acquire() as conn:
                return await rotation.request_rotation(
                    conn,
                    folder,
                    org=issued.org_id,
                    hub_org=issued.hub_org,
                    node_id=os.environ.get("RELAIS_NODE_ID", issued.org_id),
                    now=datetime.now(UTC),
                    overlap=timedelta(days=overlap_days),
                    revoke=revoke_old,
                )
        finally:
            await pool.close()

    try:
        keys = asyncio.run(main())
    except DomainError as error:
        raise _fail(_("relais node rotate-keys: %(error)s") % {"error": error.detail}) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise _fail(_("relais node rotate-keys: %(error)s") % {"error": error}) from None
    for key in keys:
        until = key.valid_until.isoformat() if key.valid_until else "-"
        typer.echo(f"{key.use.value}  {key.key_id}  {key.valid_from.isoformat()}  {until}")
    typer.echo(
        _(
            "New keys made and sent to the hub. The node signs with them once the hub has"
            " published them; the old keys are kept to open what was sealed for them."
        )
    )
