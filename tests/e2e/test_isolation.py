"""Isolation between organisations on the hub (DESIGN.md §3), with real servers: what an
organisation can do with its own credentials, from a leaf it controls, and what the hub refuses.

Each denial is the hub's own answer (``Permissions Violation``, ``Authorization Violation``,
``TLS Required``), read on the wire, beside a request of the same kind that the hub takes: not
a timeout."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
import nkeys
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from deploy.network import Network
from shared.federation import OUTBOX, OUTBOX_CONSUMER, account_api
from tests.e2e.conftest import client
from tests.e2e.rogue_leaf import RogueLeaf
from tests.e2e.test_federation_flows import probe_answered
from tests.waiting import eventually

VIOLATION = "-ERR 'Permissions Violation for"


class SanadLeaf:
    """Leaf links logged in to the hub with sanad's own credentials, sending what sanad likes.

    The hub answers a leaf's first violation with ``-ERR`` and then closes its link (a real
    leaf would reconnect), so each attempt gets a link of its own."""

    def __init__(self, network: Network) -> None:
        self.network = network

    async def open(self) -> RogueLeaf:
        leaf, answer = await RogueLeaf.connect(
            self.network.hub.leaf_port or 0,
            seed=self.network.nkey_seed(self.network.plan("sanad")),
            ca_file=self.network.hub_material.ca_file,
        )
        assert answer == "PONG", answer
        return leaf

    async def _attempt(self, act: Callable[[RogueLeaf], Awaitable[str]]) -> str:
        leaf = await self.open()
        try:
            return await act(leaf)
        finally:
            await leaf.close()

    async def publish(self, subject: str, reply: str = "") -> str:
        return await self._attempt(lambda leaf: leaf.publish(subject, reply))

    async def subscribe(self, subject: str) -> str:
        return await self._attempt(lambda leaf: leaf.subscribe(subject))


@pytest.fixture
async def sanad_leaf(network: Network, running_network: dict[str, Any]) -> SanadLeaf:
    return SanadLeaf(network)


async def stream_messages(network: Network, org: str | None, stream: str) -> int:
    """How many messages a hub stream holds (``org``: in that organisation's account)."""
    hub = await nats.connect(network.hub.nats_url)
    try:
        js = hub.jetstream() if org is None else hub.jetstream(prefix=account_api(org))
        return int((await js.stream_info(stream)).state.messages)
    finally:
        await hub.close()


class TestWithItsOwnCredentials:
    """sanad's leaf may reset its own consumer, send on its own link, answer its own flow
    control; the hub refuses the rest."""

    async def test_it_cannot_consume_another_organisations_share_or_the_router(
        self, sanad_leaf: SanadLeaf
    ) -> None:
        for subject in (
            "$JS.hub.API.CONSUMER.CREATE.TO_amal",
            "$JS.hub.API.CONSUMER.CREATE.TO_amal.mine.relais.net.>",
            "$JS.hub.API.CONSUMER.RESET.TO_amal.inbox",
            "$JS.hub.API.CONSUMER.CREATE.ROUTER",
            "$JS.hub.API.STREAM.MSG.GET.ROUTER",
            "$JS.hub.API.DIRECT.GET.TO_amal",
        ):
            assert (await sanad_leaf.publish(subject, "$JSC.R.x")).startswith(VIOLATION), subject
        for subject in ("fed.to.amal", "hub.to.amal", "hub.from.amal", "fed.from.sanad"):
            assert (await sanad_leaf.subscribe(subject)).startswith(VIOLATION), subject
        assert await sanad_leaf.subscribe("fed.to.sanad") == "PONG"  # its own: taken

    async def test_a_wildcard_subscription_receives_only_its_own_deliveries(
        self, network: Network, running_network: dict[str, Any]
    ) -> None:
        """The hub takes a wildcard interest (it checks only literal subjects at subscription)
        but sends the leaf only what its permissions allow, while events cross both ways."""
        leaf, answer = await RogueLeaf.connect(
            network.hub.leaf_port or 0,
            seed=network.nkey_seed(network.plan("sanad")),
            ca_file=network.hub_material.ca_file,
        )
        try:
            assert answer == "PONG", answer
            assert await leaf.subscribe(">") == "PONG"
            await probe_answered(running_network, "amal", "sanad", within=60)
            await probe_answered(running_network, "sanad", "amal", within=60)
            subjects = await leaf.received(seconds=2)
        finally:
            await leaf.close()
        assert "fed.to.sanad" in subjects  # sanad's own share reaches it (a copy of its own)
        allowed = ("fed.to.sanad", "$JSC.R.", "$JS.FC.OUTBOX.hub.", "$JS.sanad.API.")
        assert all(s.startswith(allowed) for s in subjects), subjects

    async def test_it_cannot_call_the_jetstream_api_of_the_hub_or_another_node(
        self, sanad_leaf: SanadLeaf
    ) -> None:
        for subject in (
            "$JS.hub.API.INFO",
            "$JS.hub.API.STREAM.LIST",
            "$JS.hub.API.STREAM.INFO.TO_sanad",  # not even its own share's
            "$JS.hub.API.STREAM.DELETE.TO_sanad",
            "$JS.hub.API.STREAM.PURGE.ROUTER",
            "$JS.API.STREAM.DELETE.ROUTER",
            "$JS.amal.API.STREAM.INFO.OUTBOX",
            "$JS.amal.API.CONSUMER.RESET.OUTBOX.hub",
            "JS.HUB.API.CONSUMER.RESET.ROUTER.to_amal",
            "$SYS.REQ.SERVER.PING",
        ):
            assert (await sanad_leaf.publish(subject, "$JSC.R.x")).startswith(VIOLATION), subject
        # what it needs is taken
        assert await sanad_leaf.publish("$JS.FC.TO_sanad.inbox.x", "") == "PONG"

    async def test_it_cannot_send_events_as_another_organisation(
        self, sanad_leaf: SanadLeaf
    ) -> None:
        for subject in ("fed.from.amal", "relais.net.amal.sanad.link.probed", "hub.from.amal"):
            assert (await sanad_leaf.publish(subject)).startswith(VIOLATION), subject

    async def test_its_credentials_do_not_log_in_as_a_client(self, network: Network) -> None:
        refused = NATS()
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await refused.connect(
                f"nats://127.0.0.1:{network.hub.nats_port}",
                nkeys_seed_str=network.nkey_seed(network.plan("sanad")),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )
        await refused.close()  # the socket it opened

    async def test_a_stranger_key_is_refused(self, network: Network) -> None:
        stranger = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
        leaf, answer = await RogueLeaf.connect(
            network.hub.leaf_port or 0, seed=stranger, ca_file=network.hub_material.ca_file
        )
        await leaf.close()
        assert answer == "-ERR 'Authorization Violation'"


async def test_a_plaintext_leaf_is_refused(network: Network, running_network: Any) -> None:
    leaf, answer = await RogueLeaf.connect(
        network.hub.leaf_port or 0,
        seed=network.nkey_seed(network.plan("sanad")),
        ca_file=None,
        tls=False,
    )
    await leaf.close()
    assert "TLS Required" in answer or answer == "closed", answer


async def test_a_forged_heartbeat_and_flow_control_touch_only_the_attackers_streams(
    network: Network, running_network: dict[str, Any]
) -> None:
    """DESIGN §3's attack, from a client of sanad's own nats-server: on its delivery subject,
    an idle heartbeat naming another org's stream for deletion as "stalled", and flow-control
    requests whose replies would purge ROUTER and sanad's own TO_sanad."""
    await probe_answered(running_network, "sanad", "amal", within=60)  # every stream has data
    before = {
        "ROUTER": await stream_messages(network, None, "ROUTER"),
        "TO_amal": await stream_messages(network, "amal", "TO_amal"),
    }
    assert await stream_messages(network, "sanad", "TO_sanad") > 0
    reader, writer = await asyncio.open_connection("127.0.0.1", network.plan("sanad").nats_port)
    await reader.readline()
    frames = [
        ("NATS/1.0 100 Idle Heartbeat\r\nNats-Consumer-Stalled: $JS.API.STREAM.DELETE.TO_amal", ""),
        ("NATS/1.0 100 FlowControl Request", "$JS.API.STREAM.PURGE.ROUTER"),
        ("NATS/1.0 100 FlowControl Request", "$JS.API.STREAM.DELETE.TO_amal"),
        ("NATS/1.0 100 FlowControl Request", "$JS.API.STREAM.PURGE.TO_sanad"),
    ]
    # A client of sanad's server logs in (as its services do: the attack needs no more).
    login = urlsplit(network.plan("sanad").nats_url)
    hello = {"verbose": False, "headers": True, "user": login.username, "pass": login.password}
    writer.write(f"CONNECT {json.dumps(hello)}\r\n".encode())
    for header, reply in frames:
        raw = f"{header}\r\n\r\n".encode()
        args = f"fed.from.sanad {reply} {len(raw)} {len(raw)}".replace("  ", " ")
        writer.write(f"HPUB {args}\r\n".encode() + raw + b"\r\n")
    writer.write(b"PING\r\n")
    await writer.drain()
    assert (await reader.readline()).strip() == b"PONG"
    writer.close()
    await writer.wait_closed()

    async def own_share_purged() -> bool:  # the attack did reach the hub's streams...
        return await stream_messages(network, "sanad", "TO_sanad") == 0

    await eventually(own_share_purged, within=10, what="the forged reply purges sanad's TO_sanad")
    # ...in sanad's account only
    assert await stream_messages(network, None, "ROUTER") >= before["ROUTER"]
    assert await stream_messages(network, "amal", "TO_amal") >= before["TO_amal"]
    await probe_answered(running_network, "amal", "sanad", within=60)  # and all still flows


async def test_an_event_forged_in_another_senders_name_stops_in_the_forgers_account(
    network: Network, running_network: dict[str, Any]
) -> None:
    """sanad's leaf may send on its own link (``fed.from.sanad``), and what it sends there
    lands in its ``FROM_sanad``; an event in amal's name sent that way goes no further:
    ``ROUTER`` takes only ``relais.net.sanad.>`` from sanad's account.

    Forged deliveries take the stream sequences of sanad's next real events, which the hub
    then skips as copies it has: the forger loses its own events. So sanad's node is stopped
    meanwhile (nothing else numbered), and two fillers take those sequences."""
    await probe_answered(running_network, "sanad", "amal", within=60)
    forged = f"relais.net.amal.sanad.isolation.{uuid.uuid4().hex[:8]}"
    own = f"relais.net.sanad.amal.isolation.{uuid.uuid4().hex[:8]}"
    await network.supervisor.stop("node-sanad")
    try:
        sanad = await nats.connect(network.plan("sanad").nats_url)
        try:
            js = sanad.jetstream()
            delivered = (await js.consumer_info(OUTBOX, OUTBOX_CONSUMER)).delivered
            leaf = await SanadLeaf(network).open()
            try:
                for offset, subject in enumerate((forged, own), start=1):
                    sseq, dseq = delivered.stream_seq + offset, delivered.consumer_seq + offset
                    reply = f"$JS.ACK.OUTBOX.hub.1.{sseq}.{dseq}.0.0@{subject}"
                    assert await leaf.publish("fed.from.sanad", reply) == "PONG"
            finally:
                await leaf.close()
            for _ in range(2):
                await js.publish(f"{own}.filler", b"{}")
        finally:
            await sanad.close()
    finally:
        await network.start_nodes([network.plan("sanad")])

    async def held(org: str | None, stream: str, subject: str) -> int:
        hub = await nats.connect(network.hub.nats_url)
        try:
            js = hub.jetstream() if org is None else hub.jetstream(prefix=account_api(org))
            info = await js.stream_info(stream, subjects_filter=subject)
            return int((info.state.subjects or {}).get(subject, 0))
        finally:
            await hub.close()

    async def routed() -> bool:  # sent after the forged one: ROUTER has looked past it
        return await held(None, "ROUTER", own) == 1

    await eventually(routed, within=20, what="sanad's own event, sent its own way, is routed")
    assert await held("sanad", "FROM_sanad", forged) == 1  # the forgery did reach the hub...
    assert await held(None, "ROUTER", forged) == 0  # ...and stopped in sanad's account
    assert await held("sanad", "TO_sanad", forged) == 0
    assert await held("amal", "TO_amal", forged) == 0
    await probe_answered(running_network, "sanad", "amal", within=60)  # the real link recovers


async def _leaf_accounts(network: Network) -> set[str]:
    async with httpx.AsyncClient(timeout=3) as http:
        leafz = (await http.get(f"http://127.0.0.1:{network.hub.monitor_port}/leafz")).json()
    return {leaf["account"] for leaf in leafz.get("leafs", [])}


async def test_suspension_cuts_an_organisation_off_at_once_and_reinstatement_restores_it(
    network: Network, running_network: dict[str, Any]
) -> None:
    await probe_answered(running_network, "amal", "sanad", within=60)
    async with client(running_network, "hub", "coordinator") as hub:
        suspended = await hub.post(
            "/api/v1/directory/organisations/amal/membership",
            json={"action": "suspend", "reason": "test"},
        )
        assert suspended.status_code == 200, suspended.text
        try:
            # The response comes once the hub's nats-server has dropped amal's user and link.
            assert "ORG_amal" not in await _leaf_accounts(network)
            await asyncio.sleep(2)  # and its retries are refused
            assert "ORG_amal" not in await _leaf_accounts(network)
            async with client(running_network, "amal", "admin") as amal:
                sent = await amal.post("/api/v1/directory/links/sanad/probe")
                assert sent.status_code == 202  # amal keeps working locally; nothing leaves
                probe_id = sent.json()["probe_id"]
            assert await stream_messages(network, "amal", "FROM_amal") >= 0
        finally:
            reinstated = await hub.post(
                "/api/v1/directory/organisations/amal/membership", json={"action": "reinstate"}
            )
            assert reinstated.status_code == 200, reinstated.text

    async def linked() -> bool:
        return "ORG_amal" in await _leaf_accounts(network)

    await eventually(linked, within=20, what="amal's leaf links again once reinstated")
    async with client(running_network, "amal", "admin") as amal:

        async def answered() -> bool:
            links = (await amal.get("/api/v1/directory/links")).json()
            return any(x["probe_id"] == probe_id and x["answered_at"] for x in links)

        await eventually(answered, within=60, what="the probe amal sent while suspended flows")


async def test_expired_credentials_are_refused_at_both_ends_until_renewed(
    network: Network, running_network: dict[str, Any]
) -> None:
    """Credentials that run out cut the link without any roster change, with a line in the
    hub's log and in the node's nats-server log; renewing them (the same key) restores it."""
    logs = network.root / "logs"
    amal_nats = logs / "nats-amal.log"
    before = amal_nats.read_text().count("Authorization Violation")
    async with client(running_network, "hub", "coordinator") as hub:
        short = await hub.post(
            "/api/v1/directory/organisations/amal/credentials", json={"valid_days": 3 / 86400}
        )
        assert short.status_code == 200, short.text
        try:

            async def cut() -> bool:
                return "ORG_amal" not in await _leaf_accounts(network)

            # The hub's directory checks expiries on its clock; on a loaded 2-CPU machine a tick
            # and the reload after it can take well over ten seconds.
            await eventually(cut, within=45, what="amal's link is cut when its credentials expire")

            async def refused_at_both_ends() -> bool:
                hub_log = (logs / "node-hub.log").read_text()
                return "the NATS credentials of amal expired" in hub_log and (
                    amal_nats.read_text().count("Authorization Violation") > before
                )

            await eventually(refused_at_both_ends, within=45, what="a log line at both ends")
        finally:
            renewed = await hub.post(
                "/api/v1/directory/organisations/amal/credentials", json={"valid_days": 365}
            )
            assert renewed.status_code == 200, renewed.text
        assert renewed.json()["expires_at"] > short.json()["expires_at"]

    async def linked() -> bool:
        return "ORG_amal" in await _leaf_accounts(network)

    await eventually(linked, within=20, what="amal's leaf links again once renewed")
    await probe_answered(running_network, "sanad", "amal", within=60)


class TestAdmission:
    async def test_a_malformed_application_is_refused_naming_the_problem(
        self, running_network: dict[str, Any]
    ) -> None:
        async with client(running_network, "hub", "coordinator") as hub:
            response = await hub.post(
                "/api/v1/directory/applications", json={"application": {"org_id": "nouvelle"}}
            )
        assert response.status_code == 422
        assert "application" in json.dumps(response.json())

    async def test_an_application_for_an_existing_organisation_is_refused(
        self, network: Network, running_network: dict[str, Any]
    ) -> None:
        application = json.loads(
            (network.key_dir(network.plan("sanad")) / "application.json").read_text()
        )
        async with client(running_network, "hub", "coordinator") as hub:
            response = await hub.post(
                "/api/v1/directory/applications", json={"application": application}
            )
        assert response.status_code == 409
        assert "already in the directory" in response.json()["detail"]

    async def test_an_application_whose_keys_do_not_match_its_signature_is_refused(
        self, network: Network, running_network: dict[str, Any]
    ) -> None:
        application = json.loads(
            (network.key_dir(network.plan("sanad")) / "application.json").read_text()
        )
        application["org_id"] = application["record"]["org_id"] = "imposteur"
        async with client(running_network, "hub", "coordinator") as hub:
            response = await hub.post(
                "/api/v1/directory/applications", json={"application": application}
            )
            missing = await hub.get("/api/v1/directory/organisations/imposteur")
        assert response.status_code == 403
        assert response.json()["field"] == "signature"
        assert missing.status_code == 404


async def test_nothing_of_the_hub_answers_an_org_account_for_a_missing_stream(
    network: Network, running_network: Any
) -> None:
    """The org accounts hold only their own streams: ROUTER is not in sanad's."""
    hub = await nats.connect(network.hub.nats_url)
    try:
        with pytest.raises(NotFoundError):
            await hub.jetstream(prefix=account_api("sanad")).stream_info("ROUTER")
        with pytest.raises(NotFoundError):
            await hub.jetstream(prefix=account_api("sanad")).stream_info("TO_amal")
    finally:
        await hub.close()
