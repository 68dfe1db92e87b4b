"""While the network's PostgreSQL is down, nodes answer what a careful client can act on: 503
with Retry-After over HTTP, a typed ``unavailable`` reply over NATS, never a 500; and once it is
back they serve again by themselves, and a create retried with its Idempotency-Key after a 503
makes exactly one referral."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest

from deploy.demo import bring_up, credentials
from deploy.network import Network
from deploy.processes import ProcessSpec
from tests.conftest import servers
from tests.e2e.conftest import client, user
from tests.e2e.test_referral_safety import _ask, _system_token
from tests.e2e.test_referrals import referral
from tests.waiting import eventually

Creds = dict[str, Any]
DOWN_FOR = 4.0  # seconds of requests while the database is stopped


# A network of their own: they stop PostgreSQL and a nats-server under every node at once,
# which the shared network's other tests (its clocks, its consumers' back-off) must not inherit.
@pytest.fixture(scope="module")
async def network() -> AsyncIterator[Network]:
    async with servers("relais-outages-") as net:
        yield net


@pytest.fixture(scope="module")
async def running_network(network: Network) -> AsyncIterator[Creds]:
    users = await bring_up(network, {})
    yield credentials(network, users)


@contextlib.asynccontextmanager
async def stopped(network: Network, spec: ProcessSpec) -> AsyncIterator[None]:
    """The network's process ``spec`` stopped for the block (not restarted by its supervisor),
    then started again in its place among the network's processes."""
    supervisor = network.supervisor
    position = supervisor.processes.index(supervisor[spec.name])
    await supervisor.stop(spec.name)
    try:
        yield
    finally:
        await supervisor.start(spec)
        # Back where it was, so that the network stops it in the same order as before.
        supervisor.processes.insert(position, supervisor.processes.pop())


def postgres_stopped(network: Network) -> contextlib.AbstractAsyncContextManager[None]:
    """PostgreSQL stopped (fast shutdown: every node's connections close, its socket goes)."""
    return stopped(network, network.postgres.process(network.root / "logs" / "postgres.log"))


def check_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text)
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/problems/unavailable")
    assert problem["dependency"] == "database"
    assert "database" in problem["detail"].lower()
    assert "postgres" not in response.text.lower()  # no internals: no server, socket or query


async def count_sent(sanad: httpx.AsyncClient) -> int:
    """How many referrals sanad's outbox holds, every page of it."""
    seen: set[str] = set()
    params: dict[str, str] = {"box": "outbox", "limit": "200"}
    while True:
        page = (await sanad.get("/api/v1/referrals", params=params)).json()
        seen.update(item["referral_id"] for item in page["items"])
        if not page.get("next"):
            return len(seen)
        params["after"] = page["next"]


async def ready(node: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await node.get("/readyz")).status_code == 200
    return False


async def test_while_postgres_is_down_nodes_answer_503_and_recover_by_themselves(
    running_network: Creds, network: Network
) -> None:
    nodes = {name: network.supervisor[f"node-{name}"] for name in ("sanad", "amal")}
    before = {name: (node.pid, node.restarts) for name, node in nodes.items()}
    token = await _system_token(running_network, "sanad", "caseworker")
    nc = await nats.connect(running_network["nodes"]["sanad"]["nats_url"])
    key = f"outage-{uuid.uuid4()}"
    async with (
        client(running_network, "sanad", "caseworker") as sanad,
        client(running_network, "amal", "focal_point") as amal,
    ):
        sent_before = await count_sent(sanad)
        statuses: list[int] = []
        try:
            async with postgres_stopped(network):
                deadline = time.monotonic() + DOWN_FOR
                while time.monotonic() < deadline:
                    for response in (
                        await sanad.get("/api/v1/referrals", params={"box": "outbox"}),
                        await sanad.get("/api/v1/auth/me"),
                        await amal.get("/api/v1/referrals", params={"box": "inbox"}),
                        await amal.get("/api/v1/directory/organisations/sanad"),
                        await sanad.post(
                            "/api/v1/referrals",
                            json=referral(),
                            headers={"Idempotency-Key": key},
                        ),
                    ):
                        statuses.append(response.status_code)
                        check_unavailable(response)
                    readiness = await sanad.get("/readyz")
                    assert readiness.status_code == 503
                    assert int(readiness.headers["retry-after"]) > 0
                    assert readiness.json()["checks"]["database:referrals"] is False
                    await asyncio.sleep(0.2)
                # Over NATS, a member system gets a typed error it can retry on.
                answer = await _ask(nc, "list", {"token": token, "box": "outbox"})
                error = answer["error"]
                assert error["type"] == "/problems/unavailable", json.dumps(answer)
                assert error["status"] == 503
                assert error["dependency"] == "database"
                assert error["retry_after"] > 0
                created = await _ask(
                    nc, "create", referral() | {"token": token, "idempotency_key": key}
                )
                assert created["error"]["type"] == "/problems/unavailable"
        finally:
            await nc.close()
        assert len(statuses) >= 10 and set(statuses) == {503}

        async def serving(node: httpx.AsyncClient, box: str) -> bool:
            with contextlib.suppress(httpx.HTTPError):
                response = await node.get("/api/v1/referrals", params={"box": box})
                assert response.status_code in (200, 503), response.text
                return response.status_code == 200
            return False

        await eventually(lambda: serving(sanad, "outbox"), within=60, what="sanad serves again")
        await eventually(lambda: serving(amal, "inbox"), within=60, what="amal serves again")
        await eventually(lambda: ready(sanad), within=60, what="sanad ready again")
        await eventually(lambda: ready(amal), within=60, what="amal ready again")

        # The create refused with 503 is retried, twice, with the same key: one referral.
        first = await sanad.post(
            "/api/v1/referrals", json=referral(), headers={"Idempotency-Key": key}
        )
        assert first.status_code == 201, first.text
        again = await sanad.post(
            "/api/v1/referrals", json=referral(), headers={"Idempotency-Key": key}
        )
        assert again.status_code in (200, 201), again.text
        assert again.json()["referral_id"] == first.json()["referral_id"]
        assert await count_sent(sanad) == sent_before + 1
    # Nobody restarted a node: they came back by themselves.
    assert {name: (node.pid, node.restarts) for name, node in nodes.items()} == before


# -- the pages -------------------------------------------------------------------------------


def _hidden_fields(page: str) -> list[tuple[str, str]]:
    form = re.search(
        r'<form method="post" action="([^"]*)" class="resend">(.*?)</form>', page, re.S
    )
    assert form is not None, page
    return [
        (html.unescape(name), html.unescape(value))
        for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2))
    ]


async def test_while_postgres_is_down_the_pages_say_so_and_keep_the_form(
    running_network: Creds, network: Network
) -> None:
    account = user(running_network, "sanad", "caseworker")
    base = running_network["nodes"]["sanad"]["url"]
    async with httpx.AsyncClient(base_url=base, timeout=10) as browser:
        form = await browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        logged_in = await browser.post(
            "/login",
            data={
                "username": account["username"],
                "password": account["password"],
                "csrf_token": token.group(1),
            },
        )
        assert logged_in.status_code == 303, logged_in.text
        home = await browser.get("/")
        assert home.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
        assert csrf is not None
        key = str(uuid.uuid4())
        step = {
            "csrf_token": csrf.group(1),
            "step": "need",
            "key": key,
            "category": "primary_health",
            "urgency": "priority",
        }
        async with postgres_stopped(network):
            french = await browser.get("/")
            arabic = await browser.get("/referrals?box=outbox", headers={"Accept-Language": "ar"})
            english = await browser.post(
                "/referrals/new", data=step, headers={"Accept-Language": "en"}
            )
            # The session is looked up in the database: the API says when to come back, as it
            # does for a bearer token, rather than "log in again".
            by_cookie = await browser.get("/api/v1/auth/me")
        check_unavailable(by_cookie)
        for page in (french, arabic, english):
            assert page.status_code == 503, page.text
            assert int(page.headers["retry-after"]) > 0
            assert page.headers["content-type"].startswith("text/html")
        assert '<html lang="fr" dir="ltr">' in french.text
        assert "Temporairement indisponible" in french.text
        assert "base de données" in french.text
        assert "Votre travail est conservé" in french.text
        assert '<html lang="ar" dir="rtl">' in arabic.text
        assert "غير متاح مؤقتًا" in arabic.text
        assert "Your work is kept" in english.text
        assert "cannot reach its database" in english.text
        # The form that was being sent is in the page, field for field, to send again.
        assert sorted(_hidden_fields(english.text)) == sorted(step.items())
        assert 'action="/referrals/new"' in english.text

        async def serving() -> bool:
            return (await browser.get("/")).status_code == 200

        await eventually(serving, within=60, what="sanad's pages serve again")
        resent = await browser.post("/referrals/new", data=dict(_hidden_fields(english.text)))
        assert resent.status_code == 200, resent.text  # the wizard's next step
        assert key in resent.text  # the same draft, with the same idempotency key


# -- the broker ------------------------------------------------------------------------------


async def test_while_a_nodes_nats_is_down_it_answers_503_where_it_needs_it_and_recovers(
    running_network: Creds, network: Network
) -> None:
    node = network.supervisor["node-sanad"]
    before = (node.pid, node.restarts)
    async with (
        client(running_network, "sanad", "admin") as admin,
        client(running_network, "sanad", "caseworker") as sanad,
    ):
        async with stopped(network, network.nats_process(network.plan("sanad"))):

            async def broker_down() -> bool:
                return (await sanad.get("/readyz")).json()["checks"]["nats"] is False

            await eventually(broker_down, within=30, what="sanad sees its nats-server gone")
            # What needs the broker now says so, retryably...
            status = await admin.get("/api/v1/node/status")
            assert status.status_code == 503, status.text
            assert int(status.headers["retry-after"]) > 0
            assert status.json()["type"].endswith("/problems/unavailable")
            assert status.json()["dependency"] == "broker"
            # A create needs the recipient's record: from the referrals' copy when it holds
            # one (accepted, kept in the outbox until the broker is back), else asked of the
            # directory over NATS: refused retryably, nothing half-done.
            key = f"broker-{uuid.uuid4()}"
            during = await sanad.post(
                "/api/v1/referrals", json=referral(), headers={"Idempotency-Key": key}
            )
            accepted_during = during.status_code == 201
            if not accepted_during:
                refused = during
                assert refused.status_code == 503, refused.text
                assert int(refused.headers["retry-after"]) > 0
                assert refused.json()["type"].endswith("/problems/unavailable")
                assert refused.json()["dependency"] == "broker"
                assert "relais." not in refused.text  # no subject named
            # What needs only the database goes on.
            assert (await sanad.get("/api/v1/referrals")).status_code == 200

        async def status_again() -> bool:
            return (await admin.get("/api/v1/node/status")).status_code == 200

        await eventually(status_again, within=60, what="sanad's status with its broker back")
        await eventually(lambda: ready(sanad), within=60, what="sanad ready again")
        sent_before = await count_sent(sanad)
        retried = [
            await sanad.post("/api/v1/referrals", json=referral(), headers={"Idempotency-Key": key})
            for _ in range(2)
        ]
        assert retried[0].status_code == 201, retried[0].text
        assert len({r.json()["referral_id"] for r in retried}) == 1
        if accepted_during:  # the retries answer the referral accepted while it was down
            assert retried[0].json()["referral_id"] == during.json()["referral_id"]
        assert await count_sent(sanad) == sent_before + (0 if accepted_during else 1)
    assert (node.pid, node.restarts) == before
