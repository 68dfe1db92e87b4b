"""Real servers for the whole suite, started once through the same launcher as ``relais demo``.

``network``: one PostgreSQL and three nats-servers (a hub and two leaves, each its own
JetStream domain), shared by the session. ``database_url``: a fresh database per test, cloned
from a template with every schema migrated. ``running_network``: the same network with its
node processes started and seeded (users, tokens, directory), for end-to-end tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from deploy.demo import bring_up, credentials
from deploy.network import Network, on_free_ports
from shared import db
from shared.settings import DEMO_SECRET

MEMBERS = ("sanad", "amal")
TEMPLATE = "relais_template"


@contextlib.asynccontextmanager
async def servers(prefix: str = "relais-test-") -> AsyncIterator[Network]:
    """PostgreSQL and the nats-servers of a network of the suite's members, started."""
    # A short root: PostgreSQL's Unix socket path must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    net = on_free_ports(root, MEMBERS, hub_org="secretariat", secret_key=DEMO_SECRET)
    net.extra_env["RELAIS_METRICS_SECONDS"] = "1"  # figures in /metrics fresh within a second
    # The isolation tests open hostile leaves with a member's own nkey beside its node's link;
    # the default (one link per credential) is tested on a network of its own (test_flood.py).
    net.extra_env["RELAIS_LEAF_LINKS_PER_MEMBER"] = "4"
    try:
        await net.start_servers()
        yield net
    finally:
        await net.stop()
        if os.environ.get("RELAIS_TEST_KEEP"):  # to read the servers' logs after a failure
            print(f"\nkept the test network's files (logs/) in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def network() -> AsyncIterator[Network]:
    async with servers() as net:
        yield net


@pytest.fixture(scope="session")
async def template_database(network: Network) -> str:
    """A database with every service's schema migrated, cloned for each test."""
    from deploy.node import SERVICES
    from services.auth.main import service as auth

    url = await network.postgres.ensure_database(TEMPLATE)
    pool = await db.create_pool(url, max_size=2)
    try:
        for service in (auth, *SERVICES.values()):
            await db.migrate(pool, service.name, [service.migrations] if service.migrations else [])
    finally:
        await pool.close()
    return TEMPLATE


@pytest.fixture
async def database_url(network: Network, template_database: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = await network.postgres.ensure_database(name, template=template_database)
    yield url
    await network.postgres.drop_database(name)


@pytest.fixture(scope="session")
async def running_network(network: Network) -> AsyncIterator[dict[str, Any]]:
    """The network's nodes, started and seeded; yields the demo-style credentials."""
    users = await bring_up(network, {})
    yield credentials(network, users)
