"""``relais node rotate-keys``: new X25519 and Ed25519 pairs for the organisation, published
through the hub as its own signed record change (services/directory/rotation.py); then
``relais node reseal``, the retained data keys sealed again for the new key
(services/referrals/reseal.py), and ``relais node forget-retired-keys``, the old private keys
destroyed once nothing needs them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from pydantic import ValidationError

from deploy.joining import CREDENTIALS_FILE
from services.directory import rotation
from services.directory import store as directory_store
from services.referrals import reseal
from shared import audit_trail, db
from shared.contracts.directory import PublicKey
from shared.crypto import NodeKeys, key_id
from shared.errors import DomainError
from shared.membership.joining import Credentials
from shared.text import gettext as _

NODE_DIR = Path(".relais/node")
T = TypeVar("T")


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


DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="RELAIS_DATABASE_URL", help="the node's PostgreSQL",
        show_default=False,
    ),
]  # fmt: skip
KeyFolder = Annotated[
    Path, typer.Option("--dir", envvar="RELAIS_KEY_DIR", help="the node's key folder")
]
CredentialsFile = Annotated[
    Path | None,
    typer.Option(
        envvar="RELAIS_CREDENTIALS_FILE",
        help="the credentials the hub issued (default: credentials.json in the key folder)",
        show_default=False,
    ),
]


def _org(command: str, folder: Path, credentials: Path | None) -> str:
    try:
        issued = Credentials.model_validate_json(
            (credentials or folder / CREDENTIALS_FILE).read_bytes()
        )
    except (OSError, ValidationError) as exc:
        raise _fail(f"relais node {command}: {exc}") from None
    return issued.org_id


def _run(command: str, work: Callable[[db.Pool], Awaitable[T]], database_url: str) -> T:
    async def main() -> T:
        pool = await db.create_pool(database_url, max_size=1)
        try:
            return await work(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except DomainError as error:
        raise _fail(f"relais node {command}: {error.detail}") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise _fail(f"relais node {command}: {error}") from None


def node_reseal(
    database_url: DatabaseUrl,
    folder: KeyFolder = NODE_DIR,
    credentials: CredentialsFile = None,
    batches: Annotated[
        int | None,
        typer.Option(min=1, help="stop after this many batches (run again to go on)"),
    ] = None,
) -> None:
    """Seal every retained data key again for the node's current key, in batches (each
    audited; stopped or failed, a second run goes on from where it stood), so that the
    retired private keys can be destroyed."""
    org = _org("reseal", folder, credentials)
    keys = NodeKeys.load_or_create(folder)
    done = _run(
        "reseal",
        lambda pool: reseal.reseal(
            pool, keys, actor=audit_trail.system(org, "cli:reseal"), batches=batches
        ),
        database_url,
    )
    typer.echo(
        _(
            "%(resealed)d data keys sealed again for key %(key)s; %(left)d still sealed for"
            " an older key."
        )
        % {"resealed": done.resealed, "key": key_id(keys.encryption_public), "left": done.left}
    )
    for kid, count in done.waiting.items():
        typer.echo(f"{kid}  {count}")
    if done.unopenable:
        typer.secho(
            _("%(count)d of them are sealed for a key this node no longer holds.")
            % {"count": done.unopenable},
            err=True,
            fg="red",
        )
        raise typer.Exit(1)


def node_forget_retired_keys(
    database_url: DatabaseUrl,
    folder: KeyFolder = NODE_DIR,
    credentials: CredentialsFile = None,
) -> None:
    """Destroy the node's retired private keys, once nothing needs them: refused while a
    retained data key is still sealed for one (run ``relais node reseal``) or while the
    directory still publishes one as valid. The public halves of the old signing keys stay, to
    check what they signed."""
    org = _org("forget-retired-keys", folder, credentials)

    async def work(pool: db.Pool) -> list[str]:
        async with pool.acquire() as conn:
            record = await directory_store.get_organisation(conn, org)
            published = {k.key_id: k.valid_until for k in record.keys} if record else {}
            return await reseal.forget_retired(
                conn,
                folder,
                published,
                actor=audit_trail.system(org, "cli:forget-retired-keys"),
                org=org,
                now=datetime.now(UTC),
            )

    forgotten = _run("forget-retired-keys", work, database_url)
    for kid in forgotten:
        typer.echo(kid)
    typer.echo(_("%(count)d retired private keys destroyed.") % {"count": len(forgotten)})
