"""Accounts and tokens in the ``auth`` schema: the queries, and the use cases the HTTP API, the
CLI and the demo seeding share (add a user, log in, issue and revoke tokens).

Password hashing runs in a worker thread: argon2id is slow on purpose and would otherwise stall
every other request of the node while it works.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

import asyncpg

from shared import audit_trail
from shared.auth import domain, passwords, session_store, tokens
from shared.auth.domain import ApiToken, Grant, Language, User
from shared.auth.roles import Role
from shared.auth.session_store import EndedWhy
from shared.contracts.audit import Outcome
from shared.db import Connection, Pool
from shared.errors import Conflict, NotFound, Unauthenticated

log = logging.getLogger(__name__)

SCHEMA = "auth"
# The organisation each running auth pool serves, for the audit records of logins (the
# dashboard's login page calls ``authenticate`` too); set at the auth service's start.
_NODE_ORG: dict[int, str] = {}
WRONG_CREDENTIALS = "wrong username or password"
# Writing last_used_at on every request would turn each read into a write; a minute is precise
# enough to tell an operator whether a member system still uses its token.
LAST_USED_PRECISION = timedelta(minutes=1)

_USER_COLUMNS = "username, role, display_name, language, disabled, created_at"
_TOKEN_COLUMNS = (
    "id, name, org, roles, created_by, created_at, expires_at, revoked_at, last_used_at"
)


def _user(row: asyncpg.Record) -> User:
    return User(
        username=row["username"],
        role=Role(row["role"]),
        display_name=row["display_name"],
        language=Language(row["language"]),
        disabled=row["disabled"],
        created_at=row["created_at"],
    )


def _api_token(row: asyncpg.Record) -> ApiToken:
    return ApiToken(
        id=row["id"],
        name=row["name"],
        org=row["org"],
        roles=frozenset(Role(r) for r in row["roles"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


# --- users -----------------------------------------------------------------------------------


async def add_user(
    pool: Pool,
    username: str,
    password: str,
    role: Role | str,
    *,
    display_name: str | None = None,
    language: Language | str = Language.FR,
) -> User:
    """Create a staff account; ``Conflict`` if the username is taken, ``Invalid`` on bad input."""
    username = domain.check_username(domain.normalise_username(username))
    domain.check_password(password)
    display_name = domain.check_display_name(display_name)
    role, language = domain.check_role(role), domain.check_language(language)
    password_hash = await passwords.in_turn(passwords.hash_password, password)
    try:
        row = await pool.fetchrow(
            f"INSERT INTO auth.users (username, password_hash, role, display_name, language)"
            f" VALUES ($1, $2, $3, $4, $5) RETURNING {_USER_COLUMNS}",
            username,
            password_hash,
            role.value,
            display_name,
            language.value,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("this username is taken", field="username") from None
    assert row is not None
    log.info("user account created (role %s)", role)
    return _user(row)


async def list_users(pool: Pool) -> list[User]:
    rows = await pool.fetch(f"SELECT {_USER_COLUMNS} FROM auth.users ORDER BY username")
    return [_user(row) for row in rows]


async def get_user(pool: Pool, username: str) -> User | None:
    row = await pool.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM auth.users WHERE username = $1",
        domain.normalise_username(username),
    )
    return None if row is None else _user(row)


async def active_user(pool: Pool, username: str) -> User | None:
    user = await get_user(pool, username)
    return None if user is None or user.disabled else user


async def disable_user(pool: Pool, username: str) -> User:
    """Disable an account and end its sessions and tokens at once.

    Refused for the last active administrator: nobody could manage the node's accounts after.
    """
    username = domain.normalise_username(username)
    async with pool.acquire() as conn, conn.transaction():
        row, last_admin = await _locked(conn, username)
        if row["disabled"]:
            return _user(row)
        if last_admin:
            raise Conflict(
                "this is the last active administrator; make another one first", field="username"
            )
        disabled = await conn.fetchrow(
            f"UPDATE auth.users SET disabled = true, disabled_at = now() WHERE username = $1"
            f" RETURNING {_USER_COLUMNS}",
            username,
        )
        await _revoke_access_tokens(conn, username)
        ended = await session_store.end_all_of(conn, username, EndedWhy.DISABLED)
    assert disabled is not None  # the row is locked: it is still there
    log.info("user account disabled (role %s)", disabled["role"])
    await _audit_ended(pool, username, ended)
    return _user(disabled)


async def _locked(conn: Connection, username: str) -> tuple[asyncpg.Record, bool]:
    """The account's row, locked for a change, and whether it is the last active administrator.

    Every active admin is locked too: two admins disabling or demoting each other at once are
    served one after the other, and cannot leave the node with none."""
    admins = await conn.fetch(
        "SELECT username FROM auth.users WHERE role = 'admin' AND NOT disabled FOR UPDATE"
    )
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM auth.users WHERE username = $1 FOR UPDATE", username
    )
    if row is None:
        raise NotFound("no such user", field="username")
    return row, [a["username"] for a in admins] == [username]


async def change_role(pool: Pool, username: str, role: Role | str) -> User:
    """Give an account another role; its sessions and login tokens end at once (the person
    logs in again into what the new role shows). Refused for the last active administrator."""
    username, role = domain.normalise_username(username), domain.check_role(role)
    async with pool.acquire() as conn, conn.transaction():
        row, last_admin = await _locked(conn, username)
        if row["role"] == role.value:
            return _user(row)
        if role != Role.ADMIN and last_admin:
            raise Conflict(
                "this is the last active administrator; make another one first", field="role"
            )
        changed = await conn.fetchrow(
            f"UPDATE auth.users SET role = $2 WHERE username = $1 RETURNING {_USER_COLUMNS}",
            username,
            role.value,
        )
        await _revoke_access_tokens(conn, username)
        ended = await session_store.end_all_of(conn, username, EndedWhy.ROLE)
    assert changed is not None  # the row is locked: it is still there
    log.info("user account's role changed to %s", role)
    await _audit_ended(pool, username, ended)
    return _user(changed)


async def change_password(pool: Pool, username: str, password: str) -> User:
    """Set an account's password; its sessions and login tokens end at once: whoever knew the
    old one is out everywhere."""
    username = domain.normalise_username(username)
    domain.check_password(password)
    password_hash = await passwords.in_turn(passwords.hash_password, password)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"UPDATE auth.users SET password_hash = $2 WHERE username = $1"
            f" RETURNING {_USER_COLUMNS}",
            username,
            password_hash,
        )
        if row is None:
            raise NotFound("no such user", field="username")
        await _revoke_access_tokens(conn, username)
        ended = await session_store.end_all_of(conn, username, EndedWhy.PASSWORD)
    log.info("user account's password changed")
    await _audit_ended(pool, username, ended)
    return _user(row)


async def _revoke_access_tokens(conn: Connection, username: str) -> None:
    await conn.execute(
        "UPDATE auth.tokens SET revoked_at = now()"
        " WHERE username = $1 AND kind = 'access' AND revoked_at IS NULL",
        username,
    )


async def _audit_ended(pool: Pool, username: str, ended: int) -> None:
    """The sessions a change to the account ended, as one record (how many: in its digest)."""
    if ended:
        await audit(
            pool, "system:auth", "session.ended_all", f"user:{username}", {"sessions": ended}
        )


async def has_active_admin(pool: Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM auth.users WHERE role = 'admin' AND NOT disabled)"
        )
    )


def serve_org(pool: Pool, org: str) -> None:
    """Say which organisation ``pool``'s node belongs to: its logins are then audited."""
    _NODE_ORG[id(pool)] = org


async def audit(
    pool: Pool,
    actor: str,
    action: str,
    object: str,
    content: object = None,
    outcome: Outcome = Outcome.OK,
    *,
    org: str | None = None,
) -> None:
    """Record an account or token action in the node's audit log (through the auth outbox)."""
    org = org or _NODE_ORG.get(id(pool))
    if org is None:
        return  # a pool no node runs (the command line before a node exists, a unit test)
    async with pool.acquire() as conn, conn.transaction():
        await audit_trail.record(
            conn,
            SCHEMA,
            actor=audit_trail.Actor(org, actor),
            action=action,
            object=object,
            content=content,
            outcome=outcome,
        )


async def authenticate(pool: Pool, username: str, password: str) -> User:
    """The active user these credentials belong to; ``Unauthenticated`` otherwise.

    Unknown users, wrong passwords and disabled accounts get the same answer in about the same
    time, so that the answer does not tell who has an account here. Both are audited: a failed
    login to an unknown name keeps only a digest of what was typed.
    """
    username = domain.normalise_username(username)
    row = await pool.fetchrow(
        f"SELECT password_hash, {_USER_COLUMNS} FROM auth.users WHERE username = $1", username
    )
    if row is None:
        await passwords.in_turn(passwords.spend_verification_time, password)
        await audit(
            pool, "system:auth", "session.login_failed", "user:unknown", username, Outcome.REFUSED
        )
        raise Unauthenticated(WRONG_CREDENTIALS)
    verdict = await passwords.in_turn(passwords.verify_password, row["password_hash"], password)
    if not verdict.ok or row["disabled"]:
        await audit(
            pool,
            f"user:{username}",
            "session.login_failed",
            f"user:{username}",
            None,
            Outcome.REFUSED,
        )
        raise Unauthenticated(WRONG_CREDENTIALS)
    await audit(pool, f"user:{username}", "session.login", f"user:{username}")
    if verdict.rehash is not None:
        # The hashing parameters changed since this password was set: upgrade it now, while
        # the clear password is at hand. Only if nobody changed the hash meanwhile.
        await pool.execute(
            "UPDATE auth.users SET password_hash = $3 WHERE username = $1 AND password_hash = $2",
            username,
            row["password_hash"],
            verdict.rehash,
        )
    return _user(row)


# --- tokens ----------------------------------------------------------------------------------


async def issue_access_token(
    pool: Pool, username: str, ttl: timedelta = domain.ACCESS_TOKEN_TTL
) -> str:
    """A new login token for an active user; the secret is returned once and never stored."""
    domain.check_ttl(ttl)
    token = tokens.new_token()
    token_id = await pool.fetchval(
        "INSERT INTO auth.tokens (hash, kind, username, created_by, expires_at)"
        " SELECT $1, 'access', username, username, now() + $3::interval"
        " FROM auth.users WHERE username = $2 AND NOT disabled"
        " RETURNING id",
        token.digest,
        domain.normalise_username(username),
        ttl,
    )
    if token_id is None:
        raise NotFound("no such active user", field="username")
    return token.secret


async def create_api_token(
    pool: Pool,
    name: str,
    org: str,
    roles: Iterable[Role | str],
    created_by: str,
    *,
    ttl: timedelta | None = None,
) -> tuple[UUID, str]:
    """An organisation-scoped token for a member system: its id, and its secret (shown once)."""
    name = domain.check_token_name(name)
    domain.check_org(org)
    chosen = domain.check_api_token_roles(roles)
    domain.check_ttl(ttl)
    token = tokens.new_token()
    token_id: UUID = await pool.fetchval(
        "INSERT INTO auth.tokens (hash, kind, name, org, roles, created_by, expires_at)"
        " VALUES ($1, 'api', $2, $3, $4, $5, now() + $6::interval) RETURNING id",
        token.digest,
        name,
        org,
        sorted(chosen),
        created_by,
        ttl,
    )
    log.info("API token %s created for org %s", token_id, org)
    return token_id, token.secret


async def list_api_tokens(pool: Pool) -> list[ApiToken]:
    rows = await pool.fetch(
        f"SELECT {_TOKEN_COLUMNS} FROM auth.tokens WHERE kind = 'api' ORDER BY created_at, id"
    )
    return [_api_token(row) for row in rows]


async def get_api_token(pool: Pool, token_id: UUID) -> ApiToken | None:
    row = await pool.fetchrow(
        f"SELECT {_TOKEN_COLUMNS} FROM auth.tokens WHERE kind = 'api' AND id = $1", token_id
    )
    return None if row is None else _api_token(row)


async def revoke_token(pool: Pool, token_id: UUID) -> None:
    """Revoke a token (at once; revoking twice is harmless); ``NotFound`` if there is none."""
    found = await pool.fetchval(
        "UPDATE auth.tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
        " RETURNING id",
        token_id,
    )
    if found is None:
        raise NotFound("no such token", field="token_id")
    log.info("token %s revoked", token_id)


async def revoke_presented(pool: Pool, secret: str) -> None:
    """Revoke the token whose secret is presented (logging out of the API)."""
    await pool.execute(
        "UPDATE auth.tokens SET revoked_at = now() WHERE hash = $1 AND revoked_at IS NULL",
        tokens.digest(secret),
    )


async def grant_of(pool: Pool, secret: str) -> Grant | None:
    """What a presented token grants now, or ``None`` if it is unknown, expired, revoked, or
    belongs to a disabled user; records its use."""
    row = await pool.fetchrow(
        """
        WITH found AS (
            SELECT t.id, t.kind, t.org, t.roles, t.last_used_at, u.username, u.role
            FROM auth.tokens t LEFT JOIN auth.users u ON u.username = t.username
            WHERE t.hash = $1
              AND t.revoked_at IS NULL
              AND (t.expires_at IS NULL OR t.expires_at > now())
              AND (t.kind = 'api' OR NOT u.disabled)
        ), touched AS (
            UPDATE auth.tokens SET last_used_at = now()
            WHERE id = (SELECT id FROM found)
              AND (last_used_at IS NULL OR last_used_at < now() - $2::interval)
        )
        SELECT * FROM found
        """,
        tokens.digest(secret),
        LAST_USED_PRECISION,
    )
    if row is None:
        return None
    return Grant(
        token_id=row["id"],
        kind=row["kind"],
        username=row["username"],
        user_role=None if row["role"] is None else Role(row["role"]),
        org=row["org"],
        roles=frozenset(Role(r) for r in row["roles"] or ()),
    )


async def forget_spent_access_tokens(pool: Pool, *, keep: timedelta = timedelta(days=1)) -> int:
    """Delete access tokens expired or revoked more than ``keep`` ago; returns how many.

    API tokens stay, revoked or not: operators look back at which systems had access.
    """
    status: str = await pool.execute(
        "DELETE FROM auth.tokens WHERE kind = 'access'"
        " AND (expires_at < now() - $1::interval OR revoked_at < now() - $1::interval)",
        keep,
    )
    return int(status.split()[-1])
