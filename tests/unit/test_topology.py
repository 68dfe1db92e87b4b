"""The federation's streams and the nats-server configurations that carry them."""

from __future__ import annotations

from pathlib import Path

from deploy.nats_config import NatsServerSpec
from shared.federation import (
    Member,
    fresh_sequence,
    hub_member_consumers,
    hub_member_streams,
    node_streams,
    outbox_consumer,
    router_stream,
)


def test_a_node_sends_only_as_itself_and_receives_from_the_hub() -> None:
    streams = {s.name: s for s in node_streams("sanad", hub_domain="hub", is_hub=False)}
    assert streams["OUTBOX"].subjects == ["relais.net.sanad.>"]
    (source,) = streams["INBOX"].sources or []
    assert source.name == "TO_sanad"
    assert source.external is not None and source.external.api == "$JS.hub.API"
    # durable sourcing: the hub made the consumer; the leaf only names it
    assert source.consumer is not None and source.consumer.deliver_subject == "fed.to.sanad"


def test_a_new_outbox_counts_from_the_clock_so_a_restored_node_starts_above_its_past() -> None:
    # 3 December 2026, 12:00 UTC, in nanoseconds: the OUTBOX starts at that millisecond.
    first = fresh_sequence(1_796_299_200_000_000_000)
    assert first == 1_796_299_200_000
    streams = {
        s.name: s
        for s in node_streams("sanad", hub_domain="hub", is_hub=False, outbox_first_seq=first)
    }
    assert streams["OUTBOX"].first_seq == first
    assert all(s.first_seq is None for name, s in streams.items() if name != "OUTBOX")
    # A busy year (100 messages a second) ends below where a store made a year later starts.
    assert first + 100 * 86_400 * 365 < fresh_sequence(
        1_796_299_200_000_000_000 + 366 * 86_400 * 10**9
    )


def test_the_hub_filters_what_a_member_sends_on_its_own_sender_token() -> None:
    from_sanad, to_sanad = hub_member_streams(Member("sanad", "sanad"), hub_domain="hub")
    (origin,) = from_sanad.sources or []
    assert origin.external is not None and origin.external.api == "$JS.sanad.API"
    assert outbox_consumer("sanad").config.filter_subjects == ["relais.net.sanad.>"]
    before, after = hub_member_consumers(Member("sanad", "sanad"))
    assert before[0].config.filter_subjects == ["relais.net.sanad.>"]
    assert after[0].stream == "ROUTER"
    assert sorted(after[0].config.filter_subjects or []) == [
        "relais.net.*.all.>",
        "relais.net.*.sanad.>",
    ]
    (routed,) = to_sanad.sources or []
    assert routed.consumer is not None and routed.consumer.name == "to_sanad"


def test_the_router_sources_every_member_once() -> None:
    members = [Member("sanad", "sanad"), Member("amal", "amal"), Member("secretariat", "hub")]
    names = [s.name for s in router_stream(members, hub_domain="hub").sources or []]
    assert names == ["FROM_amal", "FROM_sanad", "FROM_secretariat"]


def test_every_stream_syncs_and_a_leaf_keeps_local_events_local(tmp_path: Path) -> None:
    leaf = NatsServerSpec(
        "sanad", "sanad", 4223, 8223, tmp_path, hub_leaf_urls=("nats-leaf://127.0.0.1:7422",)
    ).render()
    hub = NatsServerSpec("hub", "hub", 4222, 8222, tmp_path, leaf_port=7422).render()
    for config in (leaf, hub):
        assert "sync_interval: always" in config
    assert 'domain: "sanad"' in leaf
    assert 'deny_exports: ["relais.local.>"' in leaf
    assert 'listen: "127.0.0.1:7422"' in hub
