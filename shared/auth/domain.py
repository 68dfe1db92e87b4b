"""Account rules: what a valid user and API token are, and whom a presented token stands for.

Pure: no database, no HTTP. The store and the CLI apply the same rules as the HTTP API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal
from uuid import UUID

from shared.auth.roles import Principal, Role
from shared.errors import Invalid

USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{2,39}$"
ORG_PATTERN = r"^[a-z][a-z0-9_]{1,30}$"
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024  # argon2 hashes anything, but an unbounded body is a cheap DoS
DISPLAY_NAME_MAX_LENGTH = 120
TOKEN_NAME_MAX_LENGTH = 80
ACCESS_TOKEN_TTL = timedelta(hours=8)  # one working day: staff log in each morning
# A member system acts as staff of its organisation, never as the node's administrator.
API_TOKEN_ROLES = frozenset(Role) - {Role.ADMIN}

TokenKind = Literal["access", "api"]


class Language(StrEnum):
    """The languages the pages speak; French is the network's working language."""

    FR = "fr"
    AR = "ar"
    EN = "en"


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    display_name: str | None
    language: Language
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class ApiToken:
    """An organisation-scoped token of a member system, as listed (its secret is never kept)."""

    id: UUID
    name: str
    org: str
    roles: frozenset[Role]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class Grant:
    """What a valid, unexpired, unrevoked token found in the store grants."""

    token_id: UUID
    kind: TokenKind
    username: str | None  # access tokens: the (active) user
    user_role: Role | None
    org: str | None  # API tokens: the organisation and roles they act for
    roles: frozenset[Role]


def principal_for(grant: Grant, node_org: str) -> Principal:
    if grant.kind == "access":
        assert grant.username is not None and grant.user_role is not None
        return user_principal(grant.username, grant.user_role, node_org)
    assert grant.org is not None
    return Principal(f"token:{grant.token_id}", "system", grant.org, grant.roles)


def user_principal(username: str, role: Role, node_org: str) -> Principal:
    return Principal(username, "user", node_org, frozenset({role}))


def normalise_username(username: str) -> str:
    """How a username is compared: people type "Amina" for the account "amina"."""
    return username.strip().lower()


def check_username(username: str) -> str:
    if not re.match(USERNAME_PATTERN, username):
        raise Invalid(
            "a username is 3 to 40 characters: lower-case letters, digits, '.', '_' or '-',"
            " starting with a letter",
            field="username",
        )
    return username


def check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise Invalid(f"roles are among: {', '.join(Role)}", field="role") from None


def check_language(language: Language | str) -> Language:
    try:
        return Language(language)
    except ValueError:
        raise Invalid(f"languages are among: {', '.join(Language)}", field="language") from None


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise Invalid(f"a password has at least {PASSWORD_MIN_LENGTH} characters", field="password")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise Invalid(f"a password has at most {PASSWORD_MAX_LENGTH} characters", field="password")
    return password


def check_display_name(display_name: str | None) -> str | None:
    if display_name is None:
        return None
    display_name = display_name.strip()
    if not display_name or len(display_name) > DISPLAY_NAME_MAX_LENGTH:
        raise Invalid(
            f"a display name has 1 to {DISPLAY_NAME_MAX_LENGTH} characters", field="display_name"
        )
    return display_name


def check_token_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > TOKEN_NAME_MAX_LENGTH:
        raise Invalid(f"a token name has 1 to {TOKEN_NAME_MAX_LENGTH} characters", field="name")
    return name


def check_org(org: str) -> str:
    if not re.match(ORG_PATTERN, org):
        raise Invalid("not an organisation id", field="org")
    return org


def check_api_token_roles(roles: Iterable[Role | str]) -> frozenset[Role]:
    try:
        chosen = frozenset(Role(role) for role in roles)
    except ValueError:
        raise Invalid(
            f"roles are among: {', '.join(sorted(API_TOKEN_ROLES))}", field="roles"
        ) from None
    if not chosen:
        raise Invalid("an API token needs at least one role", field="roles")
    if Role.ADMIN in chosen:
        raise Invalid(
            "an API token acts for a member system, never as an administrator", field="roles"
        )
    return chosen


def check_token_org(org: str, *, node_org: str, on_hub: bool) -> str:
    """A member node issues tokens for its own organisation; the hub may issue for any member."""
    check_org(org)
    if not on_hub and org != node_org:
        raise Invalid(
            f"this node issues tokens for its own organisation ({node_org}) only", field="org"
        )
    return org


def check_ttl(ttl: timedelta | None, *, field: str = "ttl") -> timedelta | None:
    if ttl is not None and ttl <= timedelta(0):
        raise Invalid("a token's lifetime must be positive", field=field)
    return ttl
