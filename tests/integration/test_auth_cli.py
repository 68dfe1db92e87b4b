"""``relais user`` and ``relais token`` against a real PostgreSQL: what an operator types, what
they read back, and what the node then accepts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
import typer
from typer.testing import CliRunner, Result

from deploy.cli_access import token_app, user_app
from shared import db
from shared.auth import authenticate
from shared.auth.store import grant_of, list_api_tokens
from shared.errors import Unauthenticated

PASSWORD = "correct horse battery"


async def run(app: typer.Typer, *args: str, stdin: str | None = None) -> Result:
    # The CLI runs its own event loop: give it a thread of its own, away from the test's loop.
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), input=stdin)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[db.Pool]:
    pool = await db.create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


class TestUsers:
    async def test_a_user_added_with_a_password_on_stdin_can_log_in(
        self, database_url: str, pool: db.Pool
    ) -> None:
        result = await run(
            user_app, "add", "amina", "--role", "focal_point", "--password-stdin",
            "--database-url", database_url, "--json", stdin=f"{PASSWORD}\n",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["role"] == "focal_point"
        assert PASSWORD not in result.output
        user = await authenticate(pool, "amina", PASSWORD)
        assert user.username == "amina"

    async def test_the_password_is_asked_twice_and_never_echoed(
        self, database_url: str, pool: db.Pool
    ) -> None:
        result = await run(
            user_app, "add", "karim", "--role", "caseworker", "--display-name", "Karim",
            "--database-url", database_url, stdin=f"{PASSWORD}\n{PASSWORD}\n",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "Created user karim (caseworker)." in result.stdout
        assert PASSWORD not in result.output
        assert (await authenticate(pool, "karim", PASSWORD)).display_name == "Karim"

    async def test_a_mistyped_confirmation_creates_nobody(self, database_url: str) -> None:
        result = await run(
            user_app, "add", "karim", "--role", "caseworker", "--database-url", database_url,
            stdin=f"{PASSWORD}\n{PASSWORD}x\n",
        )  # fmt: skip
        assert result.exit_code != 0
        listed = await run(user_app, "list", "--database-url", database_url, "--json")
        assert json.loads(listed.stdout) == []

    async def test_a_short_password_is_refused_naming_the_rule(self, database_url: str) -> None:
        result = await run(
            user_app, "add", "karim", "--role", "caseworker", "--password-stdin",
            "--database-url", database_url, stdin="short\n",
        )  # fmt: skip
        assert result.exit_code == 1
        assert "at least 12 characters" in result.stderr

    async def test_a_taken_username_is_refused(self, database_url: str) -> None:
        args = ("add", "amina", "--role", "admin", "--password-stdin")
        first = await run(user_app, *args, "--database-url", database_url, stdin=PASSWORD)
        again = await run(user_app, *args, "--database-url", database_url, stdin=PASSWORD)
        assert first.exit_code == 0 and again.exit_code == 1
        assert "taken" in again.stderr

    async def test_listed_then_disabled_users_can_no_longer_log_in(
        self, database_url: str, pool: db.Pool
    ) -> None:
        for name, role in (("amina", "admin"), ("karim", "caseworker")):
            added = await run(
                user_app, "add", name, "--role", role, "--password-stdin",
                "--database-url", database_url, stdin=PASSWORD,
            )  # fmt: skip
            assert added.exit_code == 0, added.output
        disabled = await run(user_app, "disable", "karim", "--database-url", database_url)
        assert disabled.exit_code == 0 and "Disabled user karim." in disabled.stdout
        listed = await run(user_app, "list", "--database-url", database_url, "--json")
        assert [(u["username"], u["disabled"]) for u in json.loads(listed.stdout)] == [
            ("amina", False),
            ("karim", True),
        ]
        with pytest.raises(Unauthenticated):
            await authenticate(pool, "karim", PASSWORD)

    async def test_the_database_url_is_required(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("RELAIS_DATABASE_URL", raising=False)
        result = await run(user_app, "list")
        assert result.exit_code == 2
        assert "--database-url" in result.stderr

    async def test_the_database_url_may_come_from_the_environment(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RELAIS_DATABASE_URL", database_url)
        result = await run(user_app, "list")
        assert result.exit_code == 0
        assert "No users yet" in result.stdout


class TestTokens:
    async def test_a_created_token_is_printed_once_and_works_until_revoked(
        self, database_url: str, pool: db.Pool
    ) -> None:
        created = await run(
            token_app, "create", "case system", "--org", "sanad", "--role", "caseworker",
            "--role", "focal_point", "--database-url", database_url, "--json",
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        token = json.loads(created.stdout)
        assert token["roles"] == ["caseworker", "focal_point"] and token["created_by"] == "cli"
        grant = await grant_of(pool, token["token"])
        assert grant is not None and grant.org == "sanad"

        listed = await run(token_app, "list", "--database-url", database_url)
        assert token["id"] in listed.stdout and token["token"] not in listed.stdout

        revoked = await run(token_app, "revoke", token["id"], "--database-url", database_url)
        assert revoked.exit_code == 0 and f"Revoked token {token['id']}." in revoked.stdout
        assert await grant_of(pool, token["token"]) is None
        [stored] = await list_api_tokens(pool)
        assert stored.id == UUID(token["id"]) and stored.revoked_at is not None

    async def test_human_output_shows_the_secret_with_a_warning(self, database_url: str) -> None:
        created = await run(
            token_app, "create", "case system", "--org", "sanad", "--role", "auditor",
            "--database-url", database_url,
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        lines = created.stdout.splitlines()
        assert lines[0].startswith("Created API token ") and lines[1].startswith("rls_")
        assert "not shown again" in created.stderr

    async def test_an_admin_token_is_refused(self, database_url: str) -> None:
        refused = await run(
            token_app, "create", "case system", "--org", "sanad", "--role", "admin",
            "--database-url", database_url,
        )  # fmt: skip
        assert refused.exit_code == 1
        assert "administrator" in refused.stderr

    async def test_revoking_an_unknown_token_fails(self, database_url: str) -> None:
        missing = await run(
            token_app, "revoke", "0190b4a4-0000-7000-8000-000000000000",
            "--database-url", database_url,
        )  # fmt: skip
        assert missing.exit_code == 1
        assert "no such token" in missing.stderr
