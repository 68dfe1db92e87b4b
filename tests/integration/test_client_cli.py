"""``relais client`` against a real PostgreSQL: what an administrator types on a member node
and reads back (the token and the nkey seed once), and on the hub a clear refusal that leaves
nothing behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import nkeys
import pytest
from typer.testing import CliRunner, Result

from deploy.cli_clients import client_app
from services.auth import clients
from shared import db
from shared.auth.store import grant_of, list_api_tokens


async def run(*args: str, env: dict[str, str] | None = None) -> Result:
    # The CLI runs its own event loop: give it a thread of its own, away from the test's loop.
    return await asyncio.to_thread(CliRunner().invoke, client_app, list(args), env=env)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[db.Pool]:
    pool = await db.create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


async def test_a_client_made_on_a_member_node_gets_a_working_token_and_its_nkey(
    database_url: str, pool: db.Pool
) -> None:
    made = await run(
        "create", "crm", "--scope", "caseworker", "--org", "sanad",
        "--database-url", database_url, "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    shown = json.loads(made.stdout)
    grant = await grant_of(pool, shown["token"])
    assert grant is not None and grant.org == "sanad"
    public = nkeys.from_seed(bytearray(shown["nkey_seed"].encode())).public_key.decode()
    assert public == shown["nkey"]  # the server holds the public half of the seed shown
    assert (shown["inbox_prefix"], shown["feed"]) == (
        "_INBOX.crm",
        {"stream": "FEED", "consumer": "crm"},
    )

    listed = await run("list", "--database-url", database_url, "--json")
    (entry,) = json.loads(listed.stdout)
    assert "token" not in entry and "nkey_seed" not in entry  # shown once, at creation

    revoked = await run("revoke", "crm", "--database-url", database_url)
    assert revoked.exit_code == 0 and "Revoked client crm." in revoked.stdout
    assert await grant_of(pool, shown["token"]) is None


@pytest.mark.parametrize(
    "where",
    [
        ["--org", "secretariat", "--node-role", "secretariat"],
        ["--org", "secretariat"],  # the secretariat's organisation is the hub's
    ],
)
async def test_the_hub_refuses_to_make_a_client_and_says_where_to(
    database_url: str, pool: db.Pool, where: list[str]
) -> None:
    refused = await run(
        "create", "crm", "--scope", "caseworker", *where, "--database-url", database_url,
        env={"RELAIS_HUB_ORG": "secretariat"},
    )  # fmt: skip
    assert refused.exit_code == 1, refused.output
    assert "the hub has no member-system clients" in refused.output
    assert "member organisation's own node" in refused.output
    assert await clients.list_all(pool) == []
    assert await list_api_tokens(pool) == []  # nothing half-made
