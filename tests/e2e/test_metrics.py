"""What an operator's Prometheus sees on real nodes: every figure the alerting rules and the
dashboard use exists, with sensible values; consumer lag appears while a consumer is paused and
drains after; an outbox's oldest unsent event ages while the node's broker is down and is sent
after; a member's link to the hub goes down with the hub's nats-server and comes back."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.demo import bring_up, credentials
from deploy.network import Network
from shared.federation import DEADLETTER, INBOX
from tests.conftest import servers
from tests.e2e.conftest import client
from tests.e2e.test_referrals import send, status_at
from tests.waiting import eventually

Creds = dict[str, Any]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "relais.json"
# Series Prometheus itself makes, and the suffixes of a histogram's series.
PROMETHEUS_OWN = {"up", "time"}
METRIC = re.compile(r"\brelais_[a-z_]+\b")


async def scrape(creds: Creds, node: str) -> Samples:
    async with client(creds, node) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


# A network of their own: they stop the hub's and a member's nats-server, and they read
# figures (members, dead letters, lag) that the other tests of the shared network change.
@pytest.fixture(scope="module")
async def network() -> AsyncIterator[Network]:
    async with servers("relais-metrics-") as net:
        yield net


@pytest.fixture(scope="module")
async def running_network(network: Network) -> AsyncIterator[Creds]:
    users = await bring_up(network, {})
    yield credentials(network, users)


async def until_metric(
    creds: Creds, node: str, name: str, holds: Any, *, within: float, what: str, **labels: str
) -> float:
    seen: list[float | None] = [None]

    async def check() -> bool:
        try:
            seen[0] = value(await scrape(creds, node), name, **labels)
        except httpx.HTTPError:
            return False
        return seen[0] is not None and bool(holds(seen[0]))

    await eventually(check, within=within, what=f"{node}: {what} (last seen {seen[0]})")
    assert seen[0] is not None
    return seen[0]


async def test_every_node_shows_the_figures_an_operator_pages_on(running_network: Creds) -> None:
    await send(running_network)  # something has flowed
    for node in ("hub", "sanad", "amal"):
        samples = await scrape(running_network, node)
        assert value(samples, "relais_ready") == 1, node
        # What DEADLETTER holds: the suite's shared network keeps those other tests made.
        kept = await _dead_letters_kept(running_network["nodes"][node]["nats_url"])
        await until_metric(
            running_network,
            node,
            "relais_dead_letters",
            lambda v, kept=kept: v == kept,
            within=10,
            what=f"{kept} dead letters, as the stream holds",
        )
        consumers = series(samples, "relais_consumer_pending")
        streams = {dict(labels)["stream"] for labels in consumers}
        assert "LOCAL" in streams and all(v >= 0 for v in consumers.values()), node
        # 0, or the age of an event the relay is sending this very moment.
        oldest = value(samples, "relais_outbox_oldest_unsent_seconds", service="referrals")
        assert oldest is not None and 0 <= oldest < 5, (node, oldest)
        # Nothing names another organisation (the member's OUTBOX consumer is "hub", the
        # hub's JetStream domain, which every member's configuration names anyway).
        others = {"sanad", "amal"} - {running_network["nodes"][node]["org"]}
        for (_, labels), _v in samples.items():
            words = {w for _, v in labels for w in re.split(r"[^a-z0-9]+", v)}
            assert not words & others, (node, dict(labels))
    hub = await scrape(running_network, "hub")
    assert value(hub, "relais_hub_members") == 2
    # Right after the network starts, the hub's copy of a member's OUTBOX may still wait out
    # nats-server's back-off before it first hears from it.
    await until_metric(
        running_network,
        "hub",
        "relais_hub_members_unheard",
        lambda v: v == 0,
        within=60,
        what="the hub hears from every member",
    )
    for member in ("sanad", "amal"):
        samples = await scrape(running_network, member)
        assert INBOX in {
            dict(labels)["stream"] for labels in series(samples, "relais_consumer_pending")
        }
        assert value(samples, "relais_hub_link_up") == 1, member
        contact = value(samples, "relais_hub_last_contact_seconds")
        assert contact is not None and 0 <= contact < 15, (member, contact)
        overdue = series(samples, "relais_referrals_overdue")
        assert len(overdue) == 2 * 3 * 2  # box, urgency, deadline: zeros included
        assert value(samples, "relais_notification_deliveries_failed", channel="email") is not None
        assert value(samples, "relais_audit_checkpoint_age_seconds") is not None


async def test_the_rules_and_the_dashboard_use_only_metrics_a_node_exposes(
    running_network: Creds,
) -> None:
    exposed: set[str] = set()
    for node in ("hub", "sanad", "amal"):
        async with client(running_network, node) as http:
            text = (await http.get("/metrics")).text
        exposed |= {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used_in_dashboard = {
        name for p in panels for t in p.get("targets", []) for name in METRIC.findall(t["expr"])
    }
    used_in_rules = set(METRIC.findall(RULES.read_text()))
    assert used_in_rules and used_in_dashboard
    assert used_in_rules - exposed == set()
    assert used_in_dashboard - exposed == set()


@pytest.fixture
async def amal_js(network: Network) -> AsyncIterator[Any]:
    """A connection to amal's own nats-server, as its operator's ``nats`` tool would have."""
    nc = await nats.connect(network.plan("amal").nats_url)
    try:
        yield nc
    finally:
        await nc.close()


async def pause(nc: Any, stream: str, consumer: str, until: datetime) -> dict[str, Any]:
    """JetStream's consumer pause (nats-server 2.11+): the consumer gets nothing until then."""
    body = {"pause_until": until.isoformat().replace("+00:00", "Z")}
    reply = await nc.request(
        f"$JS.API.CONSUMER.PAUSE.{stream}.{consumer}", json.dumps(body).encode(), timeout=5
    )
    answer: dict[str, Any] = json.loads(reply.data)
    assert "error" not in answer, answer
    return answer


async def test_lag_appears_while_a_consumer_is_paused_and_drains_after(
    running_network: Creds, amal_js: Any
) -> None:
    js = amal_js.jetstream()
    durables = [c.name for c in await js.consumers_info(INBOX) if "referrals" in c.name]
    assert durables, "amal's referrals consumer of INBOX"
    durable = durables[0]
    labels = {"stream": INBOX, "consumer": durable}
    await pause(amal_js, INBOX, durable, datetime.now(UTC) + timedelta(minutes=5))
    try:
        sent = [await send(running_network) for _ in range(3)]
        await until_metric(
            running_network,
            "amal",
            "relais_consumer_pending",
            lambda v: v >= 3,
            within=60,
            what="the paused consumer's lag",
            **labels,
        )
    finally:
        await pause(amal_js, INBOX, durable, datetime.now(UTC) - timedelta(seconds=1))
    await until_metric(
        running_network,
        "amal",
        "relais_consumer_pending",
        lambda v: v == 0,
        within=60,
        what="the lag gone once the consumer runs again",
        **labels,
    )
    async with client(running_network, "amal", "focal_point") as amal:
        assert {await status_at(amal, r) for r in sent} <= {"received", "accepted"}


async def test_the_outbox_ages_while_the_broker_is_down_and_empties_after(
    running_network: Creds, network: Network
) -> None:
    referral_id = await send(running_network)
    async with client(running_network, "amal", "focal_point") as amal:

        async def arrived() -> bool:
            return await status_at(amal, referral_id) == "received"

        await eventually(arrived, within=60, what="the referral received at amal")
        await network.supervisor.stop("nats-amal")
        try:
            # Accepting needs only amal's database: the answer waits in its outbox.
            accepted = await amal.post(f"/api/v1/referrals/{referral_id}/accept")
            assert accepted.status_code == 200, accepted.text
            first = await until_metric(
                running_network,
                "amal",
                "relais_outbox_oldest_unsent_seconds",
                lambda v: v > 0,
                within=30,
                what="an unsent event's age",
                service="referrals",
            )
            later = await until_metric(
                running_network,
                "amal",
                "relais_outbox_oldest_unsent_seconds",
                lambda v: v >= first + 2,
                within=30,
                what="the same event older",
                service="referrals",
            )
            assert later < 120
            samples = await scrape(running_network, "amal")
            assert value(samples, "relais_ready") == 0  # the broker is a dependency
            assert value(samples, "relais_ready_check", check="nats") == 0
            await until_metric(
                running_network,
                "hub",
                "relais_hub_members_unheard",
                lambda v: v == 1,
                within=40,
                what="the hub misses amal",
            )
        finally:
            await network.supervisor.start(network.nats_process(network.plan("amal")))
    await until_metric(
        running_network,
        "amal",
        "relais_outbox_oldest_unsent_seconds",
        lambda v: v == 0,
        within=60,
        what="the outbox sent once the broker is back",
        service="referrals",
    )
    await until_metric(
        running_network,
        "hub",
        "relais_hub_members_unheard",
        lambda v: v == 0,
        within=120,
        what="the hub hears from amal again",
    )
    async with client(running_network, "sanad", "caseworker") as sanad:

        async def answered() -> bool:
            return await status_at(sanad, referral_id) == "accepted"

        await eventually(answered, within=120, what="sanad learns amal accepted")


async def test_a_members_link_goes_down_with_the_hub_and_comes_back(
    running_network: Creds, network: Network
) -> None:
    hub = network.hub
    await network.supervisor.stop(f"nats-{hub.node_id}")
    try:
        await until_metric(
            running_network,
            "amal",
            "relais_hub_link_up",
            lambda v: v == 0,
            within=40,
            what="the link down",
        )
        silence = value(await scrape(running_network, "amal"), "relais_hub_last_contact_seconds")
        assert silence is not None and silence > 15
    finally:
        await network.supervisor.start(network.nats_process(hub))
    await until_metric(
        running_network,
        "amal",
        "relais_hub_link_up",
        lambda v: v == 1,
        within=120,
        what="the link up again",
    )


async def _dead_letters_kept(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(DEADLETTER)).state.messages)
    finally:
        await nc.close()
