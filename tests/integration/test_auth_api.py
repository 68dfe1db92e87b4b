"""The auth API on a real PostgreSQL: logging in, who may call what, staff accounts, and the
API tokens of member systems, judged by what a caller sees."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import APIRouter, Depends

from services.auth.main import MIGRATIONS
from services.auth.main import service as auth_service
from shared import db
from shared.auth import Principal, Role, add_user, disable_user, issue_access_token, require
from shared.auth.passwords import HASHER
from shared.auth.store import SCHEMA
from shared.settings import NodeRole, NodeSettings
from tests.integration.apps import app_of, node_settings

PASSWORD = "correct horse battery"


@dataclass
class Node:
    """One node's HTTP face, as a client sees it, and its database for setting the scene."""

    client: httpx.AsyncClient
    pool: db.Pool
    settings: NodeSettings

    async def log_in(self, username: str, password: str = PASSWORD) -> str:
        response = await self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def user(self, username: str, role: Role) -> str:
        """A user of the given role, logged in: their bearer token."""
        await add_user(self.pool, username, PASSWORD, role)
        return await self.log_in(username)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status_of(node: Node, path: str, token: str) -> int:
    """The status a GET of ``path`` with this bearer token gets."""
    return (await node.client.get(path, headers=bearer(token))).status_code


def problem_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


admin_only = APIRouter()


@admin_only.get("/admin-only")
async def admin_only_route(
    principal: Annotated[Principal, Depends(require(Role.ADMIN))],
) -> dict[str, str]:
    return {"subject": principal.subject}


@asynccontextmanager
async def running_node(
    database_url: str,
    *,
    node_id: str = "sanad",
    role: NodeRole = NodeRole.MEMBER,
    routers: tuple[APIRouter, ...] = (),
) -> AsyncIterator[Node]:
    """The auth router and a few guarded routes in an app of their own, on a fresh database."""
    settings = node_settings(database_url, node_id=node_id, role=role)
    pool = await db.create_pool(database_url, max_size=4)
    await db.migrate(pool, SCHEMA, [MIGRATIONS])
    app = app_of(
        settings,
        pool,
        [("/api/v1/auth", auth_service.router), *(("", r) for r in (admin_only, *routers))],
        services=("auth",),
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sanad.test") as client:
            yield Node(client, pool, settings)
    finally:
        await pool.close()


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    async with running_node(database_url) as running:
        yield running


@pytest.fixture
async def admin(node: Node) -> str:
    """The bearer token of the node's administrator."""
    return await node.user("admin", Role.ADMIN)


class TestLoggingIn:
    async def test_right_credentials_give_a_token_that_opens_protected_routes(
        self, node: Node
    ) -> None:
        await add_user(node.pool, "admin", PASSWORD, Role.ADMIN)
        response = await node.client.post(
            "/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["access_token"].startswith("rls_")
        assert body["role"] == "admin" and body["org"] == "sanad"
        assert body["expires_in"] == 8 * 3600
        assert response.headers["cache-control"] == "no-store"
        opened = await node.client.get("/admin-only", headers=bearer(body["access_token"]))
        assert opened.status_code == 200
        assert opened.json() == {"subject": "admin"}

    async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
        self, node: Node
    ) -> None:
        await add_user(node.pool, "amina", PASSWORD, Role.CASEWORKER)
        answers = [
            await node.client.post(
                "/api/v1/auth/token", json={"username": username, "password": password}
            )
            for username, password in [("amina", "not her password"), ("nobody", PASSWORD)]
        ]
        assert [a.status_code for a in answers] == [401, 401]
        wrong_password, unknown_user = (problem_of(a) for a in answers)
        assert wrong_password == unknown_user
        assert wrong_password["type"] == "/problems/unauthenticated"
        assert answers[0].headers["www-authenticate"] == "Bearer"

    async def test_usernames_are_not_case_sensitive_at_login(self, node: Node) -> None:
        await add_user(node.pool, "amina", PASSWORD, Role.CASEWORKER)
        token = await node.log_in(" Amina")
        me = await node.client.get("/api/v1/auth/me", headers=bearer(token))
        assert me.json()["subject"] == "amina"

    async def test_a_password_hashed_with_old_parameters_is_upgraded_at_login(
        self, node: Node
    ) -> None:
        await add_user(node.pool, "amina", PASSWORD, Role.CASEWORKER)
        old = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
        await node.pool.execute(
            "UPDATE auth.users SET password_hash = $1 WHERE username = 'amina'", old
        )
        await node.log_in("amina")
        upgraded = await node.pool.fetchval(
            "SELECT password_hash FROM auth.users WHERE username = 'amina'"
        )
        assert upgraded != old and not HASHER.check_needs_rehash(upgraded)
        await node.log_in("amina")  # the upgraded hash still opens the account

    async def test_logging_out_ends_the_token(self, node: Node) -> None:
        token = await node.user("amina", Role.CASEWORKER)
        assert (await node.client.delete("/api/v1/auth/token", headers=bearer(token))).is_success
        refused = await node.client.get("/api/v1/auth/me", headers=bearer(token))
        assert refused.status_code == 401

    async def test_an_expired_token_is_refused(self, node: Node) -> None:
        await add_user(node.pool, "amina", PASSWORD, Role.CASEWORKER)
        # Long enough for the first call on a busy machine, short enough for a test.
        token = await issue_access_token(node.pool, "amina", timedelta(seconds=2))
        assert await status_of(node, "/api/v1/auth/me", token) == 200
        await asyncio.sleep(2.2)
        assert await status_of(node, "/api/v1/auth/me", token) == 401


class TestWhoMayCallWhat:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer not-a-relais-token"},
            {"Authorization": "Basic YWRtaW46cGFzc3dvcmQ="},
            {"Authorization": "Bearer rls_" + "A" * 43},  # well formed, but never issued
        ],
        ids=["none", "garbage", "basic", "unknown"],
    )
    async def test_requests_without_valid_credentials_are_refused(
        self, node: Node, headers: dict[str, str]
    ) -> None:
        for path in ("/api/v1/auth/me", "/admin-only", "/api/v1/auth/users"):
            response = await node.client.get(path, headers=headers)
            assert response.status_code == 401
            assert problem_of(response)["type"] == "/problems/unauthenticated"

    async def test_a_caseworker_is_forbidden_from_admin_routes(self, node: Node) -> None:
        token = await node.user("amina", Role.CASEWORKER)
        for path in ("/admin-only", "/api/v1/auth/users", "/api/v1/auth/tokens"):
            response = await node.client.get(path, headers=bearer(token))
            assert response.status_code == 403
            assert problem_of(response)["type"] == "/problems/forbidden"

    async def test_anyone_authenticated_learns_who_they_are(self, node: Node) -> None:
        await add_user(node.pool, "amina", PASSWORD, Role.FOCAL_POINT, display_name="Amina B.")
        me = await node.client.get("/api/v1/auth/me", headers=bearer(await node.log_in("amina")))
        assert me.status_code == 200
        assert me.json() == {
            "subject": "amina",
            "kind": "user",
            "org": "sanad",
            "roles": ["focal_point"],
            "display_name": "Amina B.",
            "language": "fr",
        }


class TestStaffAccounts:
    async def test_an_admin_creates_a_user_who_can_then_log_in(
        self, node: Node, admin: str
    ) -> None:
        created = await node.client.post(
            "/api/v1/auth/users",
            headers=bearer(admin),
            json={
                "username": "karim",
                "password": PASSWORD,
                "role": "focal_point",
                "display_name": "Karim",
                "language": "ar",
            },
        )
        assert created.status_code == 201
        assert created.json()["username"] == "karim"
        assert "password" not in created.text
        listed = await node.client.get("/api/v1/auth/users", headers=bearer(admin))
        users = [(u["username"], u["role"], u["language"], u["disabled"]) for u in listed.json()]
        assert users == [
            ("admin", "admin", "fr", False),
            ("karim", "focal_point", "ar", False),
        ]
        karim = await node.log_in("karim")
        me = await node.client.get("/api/v1/auth/me", headers=bearer(karim))
        assert me.json()["roles"] == ["focal_point"]

    async def test_a_taken_username_is_a_conflict_naming_the_field(
        self, node: Node, admin: str
    ) -> None:
        await add_user(node.pool, "karim", PASSWORD, Role.CASEWORKER)
        again = await node.client.post(
            "/api/v1/auth/users",
            headers=bearer(admin),
            json={"username": "karim", "password": "another long password", "role": "auditor"},
        )
        assert again.status_code == 409
        assert problem_of(again)["type"] == "/problems/conflict"
        assert problem_of(again)["field"] == "username"

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"password": "too short"}, "password"),
            ({"username": "Karim El Idrissi"}, "username"),
            ({"username": "k"}, "username"),
            ({"role": "superuser"}, "role"),
            ({"language": "de"}, "language"),
            ({"is_admin": True}, "is_admin"),
        ],
    )
    async def test_bad_input_is_refused_naming_the_field_and_creates_nobody(
        self, node: Node, admin: str, change: dict[str, Any], field: str
    ) -> None:
        body = {"username": "karim", "password": PASSWORD, "role": "caseworker", **change}
        refused = await node.client.post("/api/v1/auth/users", headers=bearer(admin), json=body)
        assert refused.status_code == 422
        assert problem_of(refused)["type"] == "/problems/invalid"
        assert problem_of(refused)["field"] == field
        listed = await node.client.get("/api/v1/auth/users", headers=bearer(admin))
        assert [u["username"] for u in listed.json()] == ["admin"]

    async def test_a_disabled_users_tokens_stop_working_at_once(
        self, node: Node, admin: str
    ) -> None:
        first = await node.user("karim", Role.CASEWORKER)
        second = await node.log_in("karim")
        long_lived = await issue_access_token(node.pool, "karim", timedelta(days=30))
        disabled = await node.client.post("/api/v1/auth/users/karim/disable", headers=bearer(admin))
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        for token in (first, second, long_lived):
            refused = await node.client.get("/api/v1/auth/me", headers=bearer(token))
            assert refused.status_code == 401
        login = await node.client.post(
            "/api/v1/auth/token", json={"username": "karim", "password": PASSWORD}
        )
        assert login.status_code == 401
        assert problem_of(login)["detail"] == "wrong username or password"

    async def test_the_last_active_admin_cannot_be_disabled(self, node: Node, admin: str) -> None:
        refused = await node.client.post("/api/v1/auth/users/admin/disable", headers=bearer(admin))
        assert refused.status_code == 409
        assert await status_of(node, "/admin-only", admin) == 200
        await add_user(node.pool, "second", PASSWORD, Role.ADMIN)
        allowed = await node.client.post("/api/v1/auth/users/admin/disable", headers=bearer(admin))
        assert allowed.status_code == 200
        assert await status_of(node, "/admin-only", admin) == 401

    async def test_disabling_an_unknown_user_is_not_found(self, node: Node, admin: str) -> None:
        missing = await node.client.post("/api/v1/auth/users/nobody/disable", headers=bearer(admin))
        assert missing.status_code == 404
        assert problem_of(missing)["type"] == "/problems/not-found"


async def create_api_token(node: Node, admin: str, **body: Any) -> httpx.Response:
    return await node.client.post(
        "/api/v1/auth/tokens", headers=bearer(admin), json={"name": "case system", **body}
    )


class TestApiTokens:
    async def test_an_api_token_acts_for_its_org_with_its_roles_only(
        self, node: Node, admin: str
    ) -> None:
        created = await create_api_token(node, admin, roles=["focal_point", "caseworker"])
        assert created.status_code == 201
        assert created.headers["cache-control"] == "no-store"
        token = created.json()
        assert token["token"].startswith("rls_") and token["org"] == "sanad"
        me = await node.client.get("/api/v1/auth/me", headers=bearer(token["token"]))
        assert me.json() == {
            "subject": f"token:{token['id']}",
            "kind": "system",
            "org": "sanad",
            "roles": ["caseworker", "focal_point"],
            "display_name": None,
            "language": None,
        }
        assert await status_of(node, "/admin-only", token["token"]) == 403

    async def test_listed_tokens_show_their_use_but_never_their_secret(
        self, node: Node, admin: str
    ) -> None:
        secret = (await create_api_token(node, admin, roles=["caseworker"])).json()["token"]
        await node.client.get("/api/v1/auth/me", headers=bearer(secret))
        listed = await node.client.get("/api/v1/auth/tokens", headers=bearer(admin))
        [token] = listed.json()
        assert token["name"] == "case system" and token["created_by"] == "admin"
        assert token["last_used_at"] is not None and token["revoked_at"] is None
        assert secret not in listed.text and "token" not in token

    async def test_revoked_token_is_refused_at_once(self, node: Node, admin: str) -> None:
        token = (await create_api_token(node, admin, roles=["caseworker"])).json()
        assert (await node.client.get("/api/v1/auth/me", headers=bearer(token["token"]))).is_success
        revoked = await node.client.delete(
            f"/api/v1/auth/tokens/{token['id']}", headers=bearer(admin)
        )
        assert revoked.status_code == 204
        refused = await node.client.get("/api/v1/auth/me", headers=bearer(token["token"]))
        assert refused.status_code == 401
        listed = await node.client.get("/api/v1/auth/tokens", headers=bearer(admin))
        assert listed.json()[0]["revoked_at"] is not None

    async def test_revoking_an_unknown_token_is_not_found(self, node: Node, admin: str) -> None:
        missing = await node.client.delete(
            "/api/v1/auth/tokens/0190b4a4-0000-7000-8000-000000000000", headers=bearer(admin)
        )
        assert missing.status_code == 404

    async def test_an_api_token_expires_when_asked_to(self, node: Node, admin: str) -> None:
        token = (await create_api_token(node, admin, roles=["auditor"], expires_in_days=30)).json()
        assert token["expires_at"] is not None
        await node.pool.execute(
            "UPDATE auth.tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
            UUID(token["id"]),
        )
        assert await status_of(node, "/api/v1/auth/me", token["token"]) == 401

    async def test_an_api_token_cannot_act_as_an_administrator(
        self, node: Node, admin: str
    ) -> None:
        refused = await create_api_token(node, admin, roles=["admin"])
        assert refused.status_code == 422
        assert problem_of(refused)["field"] == "roles"

    async def test_a_member_node_issues_tokens_for_its_own_org_only(
        self, node: Node, admin: str
    ) -> None:
        refused = await create_api_token(node, admin, roles=["caseworker"], org="amal")
        assert refused.status_code == 422
        assert problem_of(refused)["field"] == "org"

    async def test_the_hub_issues_tokens_for_a_members_system(self, database_url: str) -> None:
        async with running_node(
            database_url, node_id="secretariat", role=NodeRole.SECRETARIAT
        ) as hub:
            admin = await hub.user("admin", Role.ADMIN)
            created = await create_api_token(hub, admin, roles=["focal_point"], org="amal")
            assert created.status_code == 201
            me = await hub.client.get("/api/v1/auth/me", headers=bearer(created.json()["token"]))
            assert me.json()["org"] == "amal" and me.json()["kind"] == "system"

    async def test_a_token_outlives_the_admin_who_made_it(self, node: Node, admin: str) -> None:
        # The token belongs to the organisation's system, not to the person who typed it in.
        secret = (await create_api_token(node, admin, roles=["caseworker"])).json()["token"]
        await add_user(node.pool, "second", PASSWORD, Role.ADMIN)
        await disable_user(node.pool, "admin")
        assert await status_of(node, "/api/v1/auth/me", secret) == 200


async def test_only_digests_and_argon2id_hashes_are_stored(node: Node, admin: str) -> None:
    secret = (await create_api_token(node, admin, roles=["caseworker"])).json()["token"]
    stored = await node.pool.fetch("SELECT hash FROM auth.tokens")
    digests = {bytes(row["hash"]) for row in stored}
    assert hashlib.sha256(secret.encode()).digest() in digests
    assert hashlib.sha256(admin.encode()).digest() in digests
    tokens = await node.pool.fetch("SELECT * FROM auth.tokens")
    users = await node.pool.fetch("SELECT * FROM auth.users")
    dump = str(tokens) + str(users)
    assert secret not in dump and admin not in dump and PASSWORD not in dump
    assert all(row["password_hash"].startswith("$argon2id$") for row in users)
