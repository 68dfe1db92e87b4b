"""A member system's NATS commands spend its token's request budget, the one its HTTP requests
spend (issue 16, throttling): past it, a typed error saying when to come back, over a real
nats-server, and the token's HTTP requests are refused too; another token keeps its own."""

from __future__ import annotations

import json
from typing import Any

import httpx
import nats

from deploy.network import Network
from services.auth.main import service as auth_service
from services.referrals.main import service as referrals_service
from shared.auth import Role
from shared.auth import store as auth_store
from shared.bus import login
from shared.settings import DEMO_SECRET, NodeSettings
from shared.web import create_app
from tests.conftest import servers

NODE = "sanad"
BUDGET = 5


async def test_commands_past_the_tokens_rate_are_refused_with_when_to_come_back(
    database_url: str,
) -> None:
    # NATS of its own: the command subjects name no node, and the suite's running network
    # (its nodes started by the end-to-end tests on the session's servers) answers them too.
    async with servers("relais-rate-") as own:
        await _spend_the_budget(own, database_url)


async def _spend_the_budget(network: Network, database_url: str) -> None:
    settings = NodeSettings(
        node_id=NODE,
        org=NODE,
        nats_url=network.hub.nats_url,
        database_url=database_url,
        secret_key=DEMO_SECRET,
        demo=True,
    ).model_copy(update={"api_requests_per_minute": BUDGET})
    app = create_app(settings, [auth_service, referrals_service], title="command rate test")
    async with app.router.lifespan_context(app):
        pool = app.state.contexts["auth"].pool
        tokens = [
            (await auth_store.create_api_token(pool, name, NODE, [Role.CASEWORKER], "admin"))[1]
            for name in ("case-system", "other-system")
        ]
        nc = await nats.connect(**login(network.hub.nats_url))
        try:

            async def listing(token: str) -> dict[str, Any]:
                reply = await nc.request(
                    "relais.cmd.referrals.list",
                    json.dumps({"token": token, "box": "inbox"}).encode(),
                    timeout=10,
                )
                answer: dict[str, Any] = json.loads(reply.data)
                return answer

            answers = [await listing(tokens[0]) for _ in range(BUDGET + 1)]
            assert all("result" in a for a in answers[:BUDGET]), answers
            refused = answers[-1]["error"]
            assert refused["type"] == "/problems/too-many-requests", refused
            assert refused["status"] == 429
            assert 1 <= refused["retry_after"] <= 60
            # One budget per token over NATS and HTTP: its HTTP requests wait too.
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sanad.test") as api:
                over_http = await api.get(
                    "/api/v1/referrals",
                    params={"box": "inbox"},
                    headers={"Authorization": f"Bearer {tokens[0]}"},
                )
            assert over_http.status_code == 429, over_http.text
            assert int(over_http.headers["retry-after"]) >= 1
            # Another token keeps its own rate.
            assert "result" in await listing(tokens[1])
        finally:
            await nc.close()
