"""Login throttling on a real node (auth and dashboard services, real PostgreSQL and NATS):
wrong passwords lock an account for a while (429 with ``Retry-After``, even for the right
password, audited, said in words on the login page), then the right one works again, whichever
process of the node is asked; and a token past its request rate is told when to come back."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from deploy.network import Network
from services.auth.main import service as auth_service
from services.dashboard.main import service as dashboard_service
from shared import db
from shared.auth import Role, add_user
from shared.auth.sessions import cookie_name
from shared.settings import DEMO_SECRET, NodeSettings
from shared.web import create_app

PASSWORD = "correct horse battery"
NODE = "sanad"


@dataclass
class Node:
    client: httpx.AsyncClient
    pool: db.Pool

    async def log_in(self, password: str, username: str = "amina") -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )

    async def log_in_on_the_page(
        self, password: str, lang: str = "fr", username: str = "amina"
    ) -> httpx.Response:
        headers = {"Accept-Language": lang}
        form = await self.client.get("/login", headers=headers)
        found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert found is not None, form.text
        return await self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": found.group(1)},
            headers=headers,
        )

    async def bearer(self, username: str) -> dict[str, str]:
        """The headers of a request with a fresh access token of ``username``."""
        issued = await self.log_in(PASSWORD, username)
        assert issued.status_code == 200, issued.text
        return {"Authorization": f"Bearer {issued.json()['access_token']}"}

    async def audited(self, action: str) -> list[str]:
        """The objects of the node's audit records of ``action`` (from the auth outbox)."""
        rows = await self.pool.fetch("SELECT event FROM auth.outbox ORDER BY seq")
        events = [row["event"] for row in rows]  # the pool decodes jsonb
        return [e["data"]["object"] for e in events if e["data"]["action"] == action]


@asynccontextmanager
async def node(
    network: Network, database_url: str, *, users: bool = True, **limits: float
) -> AsyncIterator[Node]:
    """A node whose throttle has ``limits`` (the settings' names), with amina and karim (made
    unless ``users`` is false: a second process of a node whose database has them)."""
    settings = NodeSettings(
        node_id=NODE,
        org=NODE,
        nats_url=network.hub.nats_url,
        database_url=database_url,
        secret_key=DEMO_SECRET,
        demo=True,
    ).model_copy(update={"login_attempts": 3, "login_delay_seconds": 0, **limits})
    app = create_app(settings, [auth_service, dashboard_service], title="throttle test")
    async with app.router.lifespan_context(app):
        pool = app.state.contexts["auth"].pool
        if users:
            await add_user(pool, "amina", PASSWORD, Role.CASEWORKER)
            await add_user(pool, "karim", PASSWORD, Role.CASEWORKER)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sanad.test") as client:
            yield Node(client, pool)


def problem_of(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, object] = response.json()
    return body


class TestAccountLock:
    async def test_wrong_passwords_lock_the_account_then_it_opens_again(
        self, network: Network, database_url: str
    ) -> None:
        async with node(network, database_url, login_lock_seconds=60) as sanad:
            answers = [(await sanad.log_in("not her password")).status_code for _ in range(3)]
            assert answers == [401, 401, 429]  # the third takes the lock
            locked = await sanad.log_in(PASSWORD)
            assert locked.status_code == 429
            assert problem_of(locked)["type"] == "/problems/too-many-requests"
            assert 1 <= int(locked.headers["retry-after"]) <= 60
            assert await sanad.audited("session.login_locked") == ["user:amina"]
            # The lock period passes (moved in the database rather than waited for: a short
            # period would also be the window the three slow hashes must fit in, on a busy
            # machine they did not).
            await sanad.pool.execute("UPDATE auth.login_locks SET until = now()")
            await sanad.pool.execute("UPDATE auth.login_attempts SET at = at - interval '61 s'")
            opened = await sanad.log_in(PASSWORD)
            assert opened.status_code == 200, opened.text

    async def test_a_locked_account_leaves_the_others_alone(
        self, network: Network, database_url: str
    ) -> None:
        async with node(network, database_url, login_lock_seconds=60) as sanad:
            for _ in range(3):
                await sanad.log_in("not her password")
            assert (await sanad.log_in(PASSWORD)).status_code == 429
            # Same address, another account: the three failures were not karim's.
            karim = await sanad.log_in(PASSWORD, username="karim")
            assert karim.status_code == 200, karim.text

    async def test_the_right_password_forgets_earlier_failures(
        self, network: Network, database_url: str
    ) -> None:
        async with node(network, database_url, login_lock_seconds=60) as sanad:
            for _ in range(2):
                assert (await sanad.log_in("not her password")).status_code == 401
            assert (await sanad.log_in(PASSWORD)).status_code == 200
            for _ in range(2):
                assert (await sanad.log_in("not her password")).status_code == 401
            assert (await sanad.log_in(PASSWORD)).status_code == 200

    async def test_an_unknown_name_is_locked_like_an_account(
        self, network: Network, database_url: str
    ) -> None:
        """Else the lock would tell which names have an account here."""
        async with node(network, database_url, login_lock_seconds=60) as sanad:
            answers = [
                (await sanad.log_in("anything", username="nobody")).status_code for _ in range(3)
            ]
            assert answers == [401, 401, 429]
            assert await sanad.audited("session.login_locked") == ["user:unknown"]

    async def test_one_address_trying_many_names_is_locked_out(
        self, network: Network, database_url: str
    ) -> None:
        async with node(
            network, database_url, login_address_attempts=4, login_lock_seconds=60
        ) as sanad:
            names = ("amina", "karim", "nadia", "omar")
            answers = [(await sanad.log_in("guess", username=n)).status_code for n in names]
            assert answers == [401, 401, 401, 429]  # one failure each: no account is locked
            refused = await sanad.log_in(PASSWORD, username="karim")
            assert refused.status_code == 429  # the address is, for every name
            assert 1 <= int(refused.headers["retry-after"]) <= 60


class TestTwoProcessesOfOneNode:
    async def test_failures_at_either_process_lock_the_account_at_both(
        self, network: Network, database_url: str
    ) -> None:
        """Two app instances on one database, as two processes of a node behind one address:
        the counts are the database's, not either process's."""
        async with (
            node(network, database_url, login_lock_seconds=60) as first,
            node(network, database_url, users=False, login_lock_seconds=60) as second,
        ):
            assert (await first.log_in("not her password")).status_code == 401
            assert (await second.log_in("not her password")).status_code == 401
            assert (await first.log_in("not her password")).status_code == 429  # the third
            for process in (first, second):
                locked = await process.log_in(PASSWORD)
                assert locked.status_code == 429
                assert 1 <= int(locked.headers["retry-after"]) <= 60
            assert await first.audited("session.login_locked") == ["user:amina"]
        # And after a restart of the node: a new app, nothing in its memory.
        async with node(network, database_url, users=False, login_lock_seconds=60) as again:
            assert (await again.log_in(PASSWORD)).status_code == 429
            karim = await again.log_in(PASSWORD, username="karim")
            assert karim.status_code == 200, karim.text


class TestLoginPage:
    async def test_a_locked_account_is_told_how_long_to_wait_in_its_language(
        self, network: Network, database_url: str
    ) -> None:
        async with node(network, database_url, login_lock_seconds=120) as sanad:
            answers = [(await sanad.log_in_on_the_page("not her")).status_code for _ in range(3)]
            assert answers == [401, 401, 429]
            said = {}
            for lang in ("fr", "ar", "en"):
                page = await sanad.log_in_on_the_page(PASSWORD, lang)
                assert page.status_code == 429
                assert page.headers["content-type"].startswith("text/html")
                assert 1 <= int(page.headers["retry-after"]) <= 120
                assert cookie_name(NODE) not in page.cookies  # no session opened
                alert = re.search(r'<p class="alert" role="alert">([^<]+)</p>', page.text)
                assert alert is not None, page.text
                said[lang] = alert.group(1)
            assert said["fr"] == "Trop de tentatives. Réessayez dans 2 minutes."
            assert said["ar"] == "محاولات كثيرة جدًا. أعد المحاولة خلال دقيقتين."
            assert said["en"] == "Too many attempts. Try again in 2 minutes."


class TestTokenRate:
    async def test_a_token_past_its_rate_is_refused_with_when_to_come_back(
        self, network: Network, database_url: str
    ) -> None:
        async with node(network, database_url, api_requests_per_minute=5) as sanad:
            amina, karim = [await sanad.bearer(name) for name in ("amina", "karim")]
            answers = [(await sanad.client.get("/api/v1/auth/me", headers=amina)) for _ in range(6)]
            assert [a.status_code for a in answers] == [200] * 5 + [429]
            refused = answers[-1]
            assert problem_of(refused)["type"] == "/problems/too-many-requests"
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            # Another token keeps its own rate.
            assert (await sanad.client.get("/api/v1/auth/me", headers=karim)).status_code == 200
