"""Member systems on their node's NATS, as their developer would notice it: only their own
commands, inbox and feed (anything else a permission error on the wire, not a timeout), a
feed that keeps what they missed while away and never carries the person's data, and a
revoked client cut off at once."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import nkeys
from nats.aio.client import Client as NatsClient

from tests.e2e.conftest import client
from tests.e2e.test_referrals import PERSON, reaches, referral
from tests.waiting import eventually

Creds = dict[str, Any]


class Connection:
    """A member system's connection, with every error the server sends it."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.nc: NatsClient

    async def error(self, exc: Exception) -> None:
        await self.errors.put(str(exc))

    async def refused(self, what: str) -> str:
        """The next error the server sent, which must be a permissions violation for ``what``."""
        error = await asyncio.wait_for(self.errors.get(), 10)
        assert "permissions violation" in error.lower(), error
        assert what.lower() in error.lower(), error
        return error


@asynccontextmanager
async def connected(system: dict[str, Any], **options: Any) -> AsyncIterator[Connection]:
    conn = Connection()

    async def on_closed() -> None:
        conn.closed.set()

    nats_ = system["nats"]
    conn.nc = await nats.connect(
        nats_["url"],
        nkeys_seed=nats_["nkey_seed_file"],
        inbox_prefix=nats_["inbox_prefix"].encode(),
        error_cb=conn.error,
        closed_cb=on_closed,
        **options,
    )
    try:
        yield conn
    finally:
        await conn.nc.close()


def seed_of(path: str | Path) -> str:
    return Path(path).read_text().strip()


async def login_answer(url: str, seed: str | None = None) -> str:
    """What the server answers a login (anonymous, or with this nkey), read on the wire: the
    raw protocol, so that a refused login leaves no half-open client behind."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        info = json.loads((await reader.readline()).decode().removeprefix("INFO "))
        connect: dict[str, Any] = {"verbose": False, "pedantic": False, "protocol": 1}
        if seed is not None:
            pair = nkeys.from_seed(bytearray(seed.encode()))
            signed = base64.urlsafe_b64encode(pair.sign(info["nonce"].encode()))
            connect |= {"nkey": pair.public_key.decode(), "sig": signed.decode().rstrip("=")}
        writer.write(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
    finally:
        writer.close()
        await writer.wait_closed()


def system(creds: Creds, node: str) -> dict[str, Any]:
    return dict(creds["nodes"][node]["clients"][0])


async def ask(nc: NatsClient, action: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await nc.request(f"relais.cmd.referrals.{action}", json.dumps(body).encode(), 10)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def feed_events(
    nc: NatsClient, consumer: str, referral_id: str, count: int = 0
) -> list[dict[str, Any]]:
    """What the client's feed delivers about one referral, acknowledged: at least ``count``
    events (the feed copies them from the node's events a moment after they happen), then
    until it has nothing more at once."""
    sub = await nc.jetstream().pull_subscribe_bind(consumer, stream="FEED")
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    batch = await sub.fetch(100, timeout=1)
                except TimeoutError:
                    if len(found) >= count:
                        return found
                    continue
                for msg in batch:
                    event = json.loads(msg.data)
                    if event["data"]["referral"]["referral_id"] == referral_id:
                        found.append(event)
                    await msg.ack()
    finally:
        await sub.unsubscribe()


async def test_a_member_system_may_use_only_its_commands_inbox_and_feed(
    running_network: Creds,
) -> None:
    sanad = system(running_network, "sanad")
    async with connected(sanad) as conn:
        nc = conn.nc
        listed = await ask(nc, "list", {"token": sanad["token"], "box": "outbox"})
        assert "result" in listed, listed
        await nc.publish("relais.net.sanad.amal.referral.offered", b"{}")
        await conn.refused('publish to "relais.net.sanad.amal.referral.offered"')
        await nc.publish("relais.local.referrals.changed", b"{}")
        await conn.refused("publish to")
        for subject in ("relais.local.>", "relais.net.>", "_INBOX.someone_else.>", ">"):
            await nc.subscribe(subject)
            await conn.refused(f'subscription to "{subject}"')
        for api in (
            "$JS.API.STREAM.INFO.LOCAL",
            "$JS.API.STREAM.MSG.GET.INBOX",
            "$JS.API.CONSUMER.CREATE.OUTBOX",
            "$JS.API.CONSUMER.DURABLE.CREATE.FEED.mine",
            "$JS.API.CONSUMER.MSG.NEXT.FEED.someone_else",
            "$JS.API.STREAM.DELETE.FEED",
        ):
            await nc.publish(api, b"{}")
            await conn.refused(f'publish to "{api}"')
        # Still connected, and its own commands still answered.
        assert "result" in await ask(nc, "list", {"token": sanad["token"]})
    # Nobody connects without a login; the client's own nkey is let in.
    assert "Authorization Violation" in await login_answer(sanad["nats"]["url"])
    seed = seed_of(sanad["nats"]["nkey_seed_file"])
    assert await login_answer(sanad["nats"]["url"], seed) == "PONG"


async def test_the_feed_keeps_what_a_system_missed_and_never_the_persons_data(
    running_network: Creds,
) -> None:
    sanad, amal = system(running_network, "sanad"), system(running_network, "amal")
    async with connected(sanad) as conn:
        made = await ask(conn.nc, "create", referral() | {"token": sanad["token"]})
    referral_id = made["result"]["referral_id"]
    async with client(running_network, "sanad", "caseworker") as http:
        await reaches(http, referral_id, "received", "amal's receipt reaches sanad")
    # Both systems were away meanwhile: their feeds kept every step.
    async with connected(amal) as conn:
        theirs = await feed_events(conn.nc, amal["nats"]["feed"]["consumer"], referral_id, 1)
        accepted = await ask(
            conn.nc,
            "act",
            {"token": amal["token"], "referral_id": referral_id, "action": "accept"},
        )
        assert "result" in accepted, accepted
    async with client(running_network, "sanad", "caseworker") as http:
        await reaches(http, referral_id, "accepted", "amal's acceptance reaches sanad")
    async with connected(sanad) as conn:
        ours = await feed_events(conn.nc, sanad["nats"]["feed"]["consumer"], referral_id, 3)
        assert await feed_events(conn.nc, sanad["nats"]["feed"]["consumer"], referral_id) == []
    assert [e["data"]["change"] for e in theirs] == ["received"]
    # The other node's steps may arrive in another order than they were made: compare sets.
    assert sorted(e["data"]["change"] for e in ours) == ["accepted", "received", "sent"]
    assert len({e["id"] for e in ours}) == 3  # the id tells a redelivery from a new event
    first = ours[0]["data"]["referral"]
    assert (first["to_org"], first["category"], first["urgency"]) == (
        "amal",
        "primary_health",
        "priority",
    )
    assert first["acknowledge_by"] and first["answer_by"]
    for event in theirs + ours:
        text = json.dumps(event)
        assert all(str(value) not in text for value in PERSON.values()), text


async def test_a_revoked_client_is_cut_off_at_once(running_network: Creds, tmp_path: Path) -> None:
    async with client(running_network, "sanad", "admin") as admin:
        made = await admin.post(
            "/api/v1/auth/clients", json={"name": "to_revoke", "scopes": ["caseworker"]}
        )
        assert made.status_code == 201, made.text
        created = made.json()
        seed = tmp_path / "to_revoke.nk"
        seed.write_text(created["nkey_seed"])
        revoked = {
            "token": created["token"],
            "nats": {
                "url": system(running_network, "sanad")["nats"]["url"],
                "nkey_seed_file": str(seed),
                "inbox_prefix": created["inbox_prefix"],
            },
        }

        # The node applies a new client at once, yet asynchronously: wait until it is let in.
        async def let_in() -> bool:
            return await login_answer(revoked["nats"]["url"], created["nkey_seed"]) == "PONG"

        await eventually(let_in, within=30, what="the new client let in by the nats-server")
        async with connected(revoked, allow_reconnect=False) as conn:
            assert "result" in await ask(conn.nc, "list", {"token": revoked["token"]})
            assert (await admin.delete("/api/v1/auth/clients/to_revoke")).status_code == 204
            await asyncio.wait_for(conn.closed.wait(), 30)
        listed = {c["name"]: c for c in (await admin.get("/api/v1/auth/clients")).json()}
        assert listed["to_revoke"]["revoked_at"] is not None
        assert (await admin.delete("/api/v1/auth/clients/nobody")).status_code == 404
        again = await admin.post(
            "/api/v1/auth/clients", json={"name": "to_revoke", "scopes": ["caseworker"]}
        )
        assert again.status_code == 409, again.text
        bad = await admin.post("/api/v1/auth/clients", json={"name": "Bad Name!", "scopes": []})
        assert bad.status_code == 422, bad.text
    refused = await login_answer(revoked["nats"]["url"], created["nkey_seed"])
    assert "Authorization Violation" in refused


async def test_the_hub_refuses_member_system_clients_with_a_specific_problem(
    running_network: Creds,
) -> None:
    async with client(running_network, "hub", "admin") as admin:
        made = await admin.post("/api/v1/auth/clients", json={"name": "sg", "scopes": ["auditor"]})
        assert made.status_code == 403, made.text
        assert made.headers["content-type"].startswith("application/problem+json")
        problem = made.json()
        assert problem["type"] == "/problems/no-clients-on-hub", problem
        assert "member organisation's own node" in problem["detail"]
        assert (await admin.get("/api/v1/auth/clients")).json() == []


async def test_bad_client_requests_name_the_field_at_fault(running_network: Creds) -> None:
    async with client(running_network, "sanad", "admin") as admin:
        for body, field in (
            ({"name": "ok_name", "scopes": ["admin"]}, "scopes"),
            ({"name": "ok_name", "scopes": ["caseworker"], "extra": 1}, "extra"),
            ({"name": "ok_name"}, "scopes"),
            ({"name": "x", "scopes": ["caseworker"]}, "name"),
        ):
            refused = await admin.post("/api/v1/auth/clients", json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["field"] == field, (body, refused.json())
        listed = {c["name"]: c for c in (await admin.get("/api/v1/auth/clients")).json()}
    assert "ok_name" not in listed  # nothing half-made
    # The demo's client has used its token (the examples and tests above); its feed is counted.
    crm = listed[system(running_network, "sanad")["name"]]
    assert isinstance(crm["feed"]["backlog"], int)
    assert "last_used_at" in crm
