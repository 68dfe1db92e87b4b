"""``relais user ...`` and ``relais token ...``: a node's staff accounts and its member systems'
API tokens, managed straight in the node's database (which works before any admin exists)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID

import asyncpg
import typer

from services.auth.main import MIGRATIONS as auth_migrations
from shared import db
from shared.auth import domain, store
from shared.auth.domain import ApiToken, Language, User
from shared.auth.roles import Role
from shared.errors import DomainError

user_app = typer.Typer(help="Staff users of a node.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for member systems.", no_args_is_help=True)

CLI_CREATOR = "cli"  # who created a token, when no admin account did

T = TypeVar("T")

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="RELAIS_DATABASE_URL",
        help="the node's PostgreSQL",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="output for scripts")]


def _run(database_url: str, work: Callable[[db.Pool], Awaitable[T]]) -> T:
    """Run ``work`` on the node's database, its auth schema brought up to date first."""

    async def main() -> T:
        pool = await db.create_pool(database_url, max_size=2)
        try:
            await db.migrate(pool, store.SCHEMA, [auth_migrations])
            return await work(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except DomainError as error:
        where = f" ({error.field})" if error.field else ""
        typer.secho(f"relais: {error.detail}{where}", err=True, fg="red")
        raise typer.Exit(1) from None
    except (OSError, asyncpg.InterfaceError) as error:
        typer.secho(f"relais: cannot reach the database: {error}", err=True, fg="red")
        raise typer.Exit(2) from None
    except asyncpg.PostgresError as error:
        typer.secho(f"relais: the database refused: {error}", err=True, fg="red")
        raise typer.Exit(2) from None


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _user_json(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role.value,
        "display_name": user.display_name,
        "language": user.language.value,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
    }


def _token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": str(token.id),
        "name": token.name,
        "org": token.org,
        "roles": sorted(token.roles),
        "created_by": token.created_by,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at and token.expires_at.isoformat(),
        "revoked_at": token.revoked_at and token.revoked_at.isoformat(),
        "last_used_at": token.last_used_at and token.last_used_at.isoformat(),
    }


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # Only the line break is the shell's; spaces inside or around are the password's.
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="lower-case letters, digits, '.', '_', '-'")],
    role: Annotated[Role, typer.Option(help="what the user may do")],
    database_url: DatabaseUrl,
    display_name: Annotated[str | None, typer.Option(help="the name shown in the pages")] = None,
    language: Annotated[Language, typer.Option(help="language of the pages")] = Language.FR,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Create a staff user; the password is asked for twice, hidden."""
    try:  # refuse a bad name before asking for a password
        domain.check_username(domain.normalise_username(username))
    except DomainError as error:
        typer.secho(f"relais: {error.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    password = _read_password(password_stdin)
    user = _run(
        database_url,
        lambda pool: store.add_user(
            pool, username, password, role, display_name=display_name, language=language
        ),
    )
    if as_json:
        _print_json(_user_json(user))
    else:
        typer.echo(f"Created user {user.username} ({user.role}).")


@user_app.command("list")
def user_list(database_url: DatabaseUrl, as_json: AsJson = False) -> None:
    """The node's staff users."""
    users = _run(database_url, store.list_users)
    if as_json:
        _print_json([_user_json(user) for user in users])
        return
    if not users:
        typer.echo("No users yet: create one with `relais user add <username> --role admin`.")
    for user in users:
        status = "disabled" if user.disabled else "active"
        name = user.display_name or ""
        typer.echo(f"{user.username:<24} {user.role:<12} {user.language:<3} {status:<9} {name}")


@user_app.command("disable")
def user_disable(
    username: Annotated[str, typer.Argument()],
    database_url: DatabaseUrl,
    as_json: AsJson = False,
) -> None:
    """Disable a user: their sessions and tokens stop working at once."""
    user = _run(database_url, lambda pool: store.disable_user(pool, username))
    if as_json:
        _print_json(_user_json(user))
    else:
        typer.echo(f"Disabled user {user.username}.")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="which system the token is for")],
    roles: Annotated[list[Role], typer.Option("--role", help="a role of the token (repeatable)")],
    org: Annotated[
        str, typer.Option(envvar="RELAIS_ORG", help="the organisation the system acts for")
    ],
    database_url: DatabaseUrl,
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="lifetime; none means until revoked")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Create an API token for a member system; its secret is printed this once."""
    ttl = None if expires_in_days is None else timedelta(days=expires_in_days)

    async def create(pool: db.Pool) -> tuple[ApiToken, str]:
        token_id, secret = await store.create_api_token(
            pool, name, org, roles, CLI_CREATOR, ttl=ttl
        )
        token = await store.get_api_token(pool, token_id)
        assert token is not None
        return token, secret

    token, secret = _run(database_url, create)
    if as_json:
        _print_json({**_token_json(token), "token": secret})
        return
    typer.echo(f"Created API token {token.id} for {token.org} ({', '.join(sorted(token.roles))}):")
    typer.echo(secret)
    typer.echo("Keep it now: it is not shown again.", err=True)


@token_app.command("list")
def token_list(database_url: DatabaseUrl, as_json: AsJson = False) -> None:
    """The node's API tokens, revoked ones included."""
    found = _run(database_url, store.list_api_tokens)
    if as_json:
        _print_json([_token_json(token) for token in found])
        return
    for token in found:
        state = "revoked" if token.revoked_at else "active"
        roles = ",".join(sorted(token.roles))
        typer.echo(f"{token.id}  {token.org:<12} {state:<8} {roles:<30} {token.name}")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[UUID, typer.Argument(help="the token's id (not its secret)")],
    database_url: DatabaseUrl,
    as_json: AsJson = False,
) -> None:
    """Revoke a token: it is refused from the next request on."""
    _run(database_url, lambda pool: store.revoke_token(pool, token_id))
    if as_json:
        _print_json({"id": str(token_id), "revoked": True})
    else:
        typer.echo(f"Revoked token {token_id}.")
