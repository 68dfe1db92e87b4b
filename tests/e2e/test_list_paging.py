"""Paging a node's referrals while they change sees each one exactly once: the cursor follows
the creation order, which no step changes, over HTTP and over NATS alike."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import nats

from tests.e2e.conftest import client
from tests.e2e.test_referral_safety import _ask, _system_token
from tests.e2e.test_referrals import referral

Creds = dict[str, Any]
Fetch = Callable[[str | None], Awaitable[tuple[list[str], str | None]]]


async def create(sanad: httpx.AsyncClient) -> str:
    response = await sanad.post("/api/v1/referrals", json=referral())
    assert response.status_code == 201, response.text
    return str(response.json()["referral_id"])


async def withdraw(sanad: httpx.AsyncClient, referral_id: str) -> None:
    response = await sanad.post(
        f"/api/v1/referrals/{referral_id}/withdraw", json={"reason": "no_longer_needed"}
    )
    assert response.status_code == 200, response.text


async def every_page(fetch: Fetch, between: Callable[[list[str]], Awaitable[None]]) -> list[str]:
    """Every id the pages list, in order, running ``between`` (the ids seen so far) after each."""
    seen: list[str] = []
    after: str | None = None
    while True:
        ids, after = await fetch(after)
        seen += ids
        if after is None:
            return seen
        await between(seen)


async def page_through_while_changing(sanad: httpx.AsyncClient, fetch: Fetch) -> None:
    # Referrals of our own, oldest first, to move while the list is paged.
    ours = [await create(sanad) for _ in range(8)]
    existing = set(await every_page(fetch, lambda _: asyncio.sleep(0)))
    assert set(ours) <= existing

    async def churn() -> None:
        """Meanwhile, as from other people: new referrals come in at the top of the list."""
        while True:
            await create(sanad)
            await asyncio.sleep(0.05)

    withdrawn: set[str] = set()

    async def move_one_not_seen_yet(seen: list[str]) -> None:
        # The step a colleague takes between two pages, on a referral further down the list:
        # ordered by last change, it would jump above the cursor and never be listed.
        for referral_id in ours:
            if referral_id not in seen and referral_id not in withdrawn:
                await withdraw(sanad, referral_id)
                withdrawn.add(referral_id)
                return

    churning = asyncio.create_task(churn())
    try:
        seen = await every_page(fetch, move_one_not_seen_yet)
    finally:
        churning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await churning
    assert withdrawn, "referrals moved while the list was paged"
    repeated = {r for r in seen if seen.count(r) > 1}
    assert not repeated, f"listed twice: {repeated}"
    missed = existing - set(seen)
    assert not missed, f"never listed: {missed} (withdrawn meanwhile: {withdrawn & missed})"


async def test_paging_the_api_while_referrals_change_lists_each_once(
    running_network: Creds,
) -> None:
    async with client(running_network, "sanad", "caseworker") as sanad:

        async def fetch(after: str | None) -> tuple[list[str], str | None]:
            params = {"box": "outbox", "limit": "3"} | ({"after": after} if after else {})
            response = await sanad.get("/api/v1/referrals", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            return [item["referral_id"] for item in page["items"]], page["next"]

        await page_through_while_changing(sanad, fetch)
        tampered = await sanad.get("/api/v1/referrals", params={"after": "2026-01-01|x"})
        assert tampered.status_code == 422
        assert tampered.json()["field"] == "after"


async def test_paging_over_nats_while_referrals_change_lists_each_once(
    running_network: Creds,
) -> None:
    token = await _system_token(running_network, "sanad", "caseworker")
    nc = await nats.connect(running_network["nodes"]["sanad"]["nats_url"])
    try:

        async def fetch(after: str | None) -> tuple[list[str], str | None]:
            request = {"token": token, "box": "outbox", "limit": 3} | (
                {"after": after} if after else {}
            )
            answer = await _ask(nc, "list", request)
            assert "result" in answer, json.dumps(answer)
            page = answer["result"]
            return [item["referral_id"] for item in page["items"]], page["next"]

        async with client(running_network, "sanad", "caseworker") as sanad:
            await page_through_while_changing(sanad, fetch)
        wrong = await _ask(nc, "list", {"token": token, "after": "not-a-cursor"})
        assert wrong["error"]["status"] == 422
        assert wrong["error"]["field"] == "after"
    finally:
        await nc.close()
