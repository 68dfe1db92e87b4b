"""Who is calling a node, and what they may do: staff accounts, bearer tokens, page sessions,
and the ``require`` guard every route states its allowed roles with.

A library, not a service: every service's guard reads the ``auth`` schema through this store.
The schema's migrations and the routes that change accounts are the auth service's
(``services/auth``)."""

from shared.auth.domain import ApiToken, Language, User
from shared.auth.guards import GuardedRoute, RoleRequirement, guarded_routes, principal_of, require
from shared.auth.roles import Principal, Role
from shared.auth.sessions import check_csrf, csrf_token, login_session, logout_session
from shared.auth.store import (
    add_user,
    authenticate,
    change_password,
    change_role,
    create_api_token,
    disable_user,
    issue_access_token,
    list_users,
    revoke_token,
)

__all__ = [
    "ApiToken",
    "GuardedRoute",
    "Language",
    "Principal",
    "Role",
    "RoleRequirement",
    "User",
    "add_user",
    "authenticate",
    "change_password",
    "change_role",
    "check_csrf",
    "create_api_token",
    "csrf_token",
    "disable_user",
    "guarded_routes",
    "issue_access_token",
    "list_users",
    "login_session",
    "logout_session",
    "principal_of",
    "require",
    "revoke_token",
]
