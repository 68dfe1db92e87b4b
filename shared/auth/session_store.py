"""Page sessions as the node keeps them (``auth.sessions``): opened at login, checked on every
request, ended by logging out, by an administrator, or by a change to the account.

A session is found by the SHA-256 digest of the random id its signed cookie carries: the id
has 256 bits of entropy, so a plain digest protects it, and a leaked table opens nothing. A
cookie copied before its session ended is refused after, wherever it is presented.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from shared.auth import tokens
from shared.auth.roles import Role
from shared.db import Connection, Pool
from shared.errors import NotFound, Unauthenticated

# Writing last_seen_at on every page would turn each read into a write; a minute tells an
# administrator well enough whether a session is still in use.
LAST_SEEN_PRECISION = timedelta(minutes=1)
# Ended and expired sessions stay this long for the administrators' view, then go.
KEPT_AFTER_END = timedelta(days=1)


class EndedWhy(StrEnum):
    LOGOUT = "logout"
    ADMIN = "admin"
    DISABLED = "disabled"
    PASSWORD = "password"
    ROLE = "role"


@dataclass(frozen=True)
class Holder:
    """Who an open session belongs to now (the account's current role)."""

    session_id: UUID
    username: str
    role: Role


@dataclass(frozen=True)
class OpenSession:
    """An open session as an administrator sees it: when, not where from."""

    id: UUID
    username: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


async def open_session(pool: Pool, username: str, secret: str, ttl: timedelta) -> UUID:
    """Record a new session of an active user; ``Unauthenticated`` if the account is disabled."""
    session_id: UUID | None = await pool.fetchval(
        "INSERT INTO auth.sessions (hash, username, expires_at)"
        " SELECT $1, username, now() + $3::interval FROM auth.users"
        " WHERE username = $2 AND NOT disabled RETURNING id",
        tokens.digest(secret),
        username,
        ttl,
    )
    if session_id is None:
        raise Unauthenticated("this account is disabled")
    return session_id


async def holder_of(pool: Pool, secret: str) -> Holder | None:
    """Whose open, unexpired session ``secret`` is (an active user's), recording its use;
    ``None`` for an ended, expired, unknown or forged one."""
    row = await pool.fetchrow(
        """
        WITH found AS (
            SELECT s.id, s.last_seen_at, u.username, u.role
            FROM auth.sessions s JOIN auth.users u ON u.username = s.username
            WHERE s.hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()
              AND NOT u.disabled
        ), touched AS (
            UPDATE auth.sessions SET last_seen_at = now()
            WHERE id = (SELECT id FROM found) AND last_seen_at < now() - $2::interval
        )
        SELECT * FROM found
        """,
        tokens.digest(secret),
        LAST_SEEN_PRECISION,
    )
    if row is None:
        return None
    return Holder(row["id"], row["username"], Role(row["role"]))


async def end_presented(pool: Pool, secret: str) -> Holder | None:
    """End the session whose secret is presented (logging out); whose it was, if it was open."""
    row = await pool.fetchrow(
        "UPDATE auth.sessions s SET ended_at = now(), ended_why = 'logout'"
        " FROM auth.users u WHERE u.username = s.username"
        " AND s.hash = $1 AND s.ended_at IS NULL RETURNING s.id, u.username, u.role",
        tokens.digest(secret),
    )
    return None if row is None else Holder(row["id"], row["username"], Role(row["role"]))


async def end_all_of(conn: Connection | Pool, username: str, why: EndedWhy) -> int:
    """End every open session of ``username`` at once; returns how many were open."""
    status: str = await conn.execute(
        "UPDATE auth.sessions SET ended_at = now(), ended_why = $2"
        " WHERE username = $1 AND ended_at IS NULL",
        username,
        why.value,
    )
    return int(status.split()[-1])


async def end_one(pool: Pool, username: str, session_id: UUID) -> None:
    """An administrator ends one open session of ``username``; ``NotFound`` if there is none."""
    found = await pool.fetchval(
        "UPDATE auth.sessions SET ended_at = now(), ended_why = 'admin'"
        " WHERE id = $1 AND username = $2 AND ended_at IS NULL RETURNING id",
        session_id,
        username,
    )
    if found is None:
        raise NotFound("no such open session", field="session_id")


async def open_sessions_of(pool: Pool, username: str) -> list[OpenSession]:
    rows = await pool.fetch(
        "SELECT id, username, created_at, last_seen_at, expires_at FROM auth.sessions"
        " WHERE username = $1 AND ended_at IS NULL AND expires_at > now()"
        " ORDER BY created_at DESC, id",
        username,
    )
    return [
        OpenSession(
            id=row["id"],
            username=row["username"],
            created_at=row["created_at"],
            last_seen_at=row["last_seen_at"],
            expires_at=row["expires_at"],
        )
        for row in rows
    ]


async def forget_spent(pool: Pool, *, keep: timedelta = KEPT_AFTER_END) -> int:
    """Delete sessions ended or expired more than ``keep`` ago; returns how many."""
    status: str = await pool.execute(
        "DELETE FROM auth.sessions"
        " WHERE ended_at < now() - $1::interval OR expires_at < now() - $1::interval",
        keep,
    )
    return int(status.split()[-1])
