"""The JetStream topology of the federation (DESIGN.md §3): which streams and source consumers
each node declares, and in which NATS account of the hub.

On every node: ``OUTBOX`` (what the node sends, ``relais.net.<org>.>``), ``INBOX`` (sources the
hub's ``TO_<org>``), ``LOCAL`` (``relais.local.>``) and ``DEADLETTER`` (advisories of messages
that were terminated or ran out of deliveries). On the hub, each member organisation has its
own NATS account (``ORG_<org>``) holding ``FROM_<org>`` (sources that node's ``OUTBOX`` across
its leaf link, filtered on its own sender token) and ``TO_<org>`` (sources what ``ROUTER``
holds for the org or for everyone); ``ROUTER`` lives in the ``HUB`` account with the
secretariat's own streams: 2N source links, not N².

Every link across an account or a leaf uses durable sourcing (nats-server 2.14+, ADR-60): the
consumer is created beforehand by the side that owns the stream, and the source names it. A
leaf then needs no right to create consumers at all (only to reset its own), and a delivery
subject per link (``fed.from.<org>``, ``fed.to.<org>``, ``hub.from.<org>``, ``hub.to.<org>``)
lets the hub's configuration scope each one to its organisation (``shared/membership/accounts.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ExternalStream,
    StorageType,
    StreamConfig,
    StreamConsumerSource,
    StreamSource,
)

from shared.events import BROADCAST

DAY = 24 * 3600.0
OUTBOX, INBOX, LOCAL, DEADLETTER, ROUTER = "OUTBOX", "INBOX", "LOCAL", "DEADLETTER", "ROUTER"
ADVISORIES = (
    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>",
    "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>",
)
HUB_ACCOUNT = "HUB"
# The durable consumers the sources name: on a member's OUTBOX (read by the hub's FROM_<org>),
# on FROM_<org> (read by ROUTER), on ROUTER (``to_<org>``, read by TO_<org>) and on TO_<org>
# (read by the member's INBOX).
OUTBOX_CONSUMER, ROUTER_CONSUMER, INBOX_CONSUMER = "hub", "router", "inbox"
HEARTBEAT = 5.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Quota:
    """What one organisation may hold at the hub, in each of its two streams (``FROM_``,
    ``TO_``): a member flooding the network fills its own streams and no one's disk.
    ``max_msg_size`` is also the leaf links' ``max_payload``: a referral envelope is a few kB,
    a document goes in chunks of at most this size. JetStream reserves each stream's
    ``max_bytes`` on the hub's disk: 100 members at the default take 25.6 GiB (times the
    replicas); a stream the disk cannot reserve is not made."""

    max_bytes: int = 128 * MIB
    max_msgs: int = 100_000
    max_msg_size: int = MIB

    def account_storage(self, replicas: int = 1) -> int:
        """The file storage an organisation's account needs for its two streams."""
        return 2 * self.max_bytes * replicas


DEFAULT_QUOTA = Quota()


def account(org: str) -> str:
    """The hub's NATS account of a member organisation."""
    return f"ORG_{org}"


def account_api(org: str) -> str:
    """Where the hub's own clients (the ``HUB`` account) reach an org account's JetStream API."""
    return f"JS.{account(org)}.API"


HUB_API = f"JS.{HUB_ACCOUNT}.API"  # where an org account reaches ROUTER's consumer reset


def to_consumer(org: str) -> str:
    return f"to_{org}"


@dataclass(frozen=True)
class Member:
    """An organisation as the hub's topology sees it: its id and its node's JetStream domain."""

    org: str
    domain: str


@dataclass(frozen=True)
class SourceConsumer:
    """A durable consumer that a source names: on ``stream``, in the JetStream API ``api``
    (``None``: the caller's own)."""

    stream: str
    config: ConsumerConfig
    api: str | None = None


def _stream(name: str, **kwargs: object) -> StreamConfig:
    settings: dict[str, object] = {
        "storage": StorageType.FILE,
        "max_age": 30 * DAY,  # PostgreSQL is the record; the broker holds what is in flight
        "discard": DiscardPolicy.OLD,
        "duplicate_window": 120.0,
    }
    return StreamConfig(name=name, **{**settings, **kwargs})  # type: ignore[arg-type]


def inbox_reset_subject(org: str, hub_domain: str) -> str:
    """Where a member's node moves the hub's consumer of its ``TO_<org>`` back (the consumer
    reset of nats-server 2.14, reached across its leaf in the hub's JetStream domain)."""
    return f"$JS.{hub_domain}.API.CONSUMER.RESET.TO_{org}.{INBOX_CONSUMER}"


def _consumer(name: str, deliver: str, filters: list[str]) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        deliver_subject=deliver,
        filter_subjects=filters or None,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.FLOW_CONTROL,
        flow_control=True,
        idle_heartbeat=HEARTBEAT,
    )


def _durable_source(name: str, api: str, consumer: str, deliver: str) -> StreamSource:
    return StreamSource(
        name=name,
        external=ExternalStream(api=api),
        consumer=StreamConsumerSource(name=consumer, deliver_subject=deliver),
    )


def node_streams(
    org: str, *, hub_domain: str, is_hub: bool, outbox_first_seq: int | None = None
) -> list[StreamConfig]:
    """The streams every node declares on its own JetStream domain.

    ``outbox_first_seq``: where a new ``OUTBOX`` starts counting (an existing one keeps its
    sequence; the server ignores the field on update). The hub's ``FROM_<org>`` remembers the
    last sequence it copied and skips anything at or below it: a node restored on an empty
    store whose ``OUTBOX`` counted from 1 again had its first answers dropped whenever the hub
    noticed the new stream late. Started from the clock in milliseconds (``fresh_sequence``), a
    new ``OUTBOX`` begins above anything its predecessor reached, unless that one published
    more than a thousand messages a second since it was made."""
    if is_hub:
        inbox = StreamSource(name=f"TO_{org}")
    else:
        inbox = _durable_source(
            f"TO_{org}", f"$JS.{hub_domain}.API", INBOX_CONSUMER, f"fed.to.{org}"
        )
    return [
        _stream(OUTBOX, subjects=[f"relais.net.{org}.>"], first_seq=outbox_first_seq),
        _stream(INBOX, sources=[inbox]),
        _stream(LOCAL, subjects=["relais.local.>"], max_age=7 * DAY),
        _stream(DEADLETTER, subjects=list(ADVISORIES), max_age=90 * DAY),
    ]


def fresh_sequence(now_ns: int) -> int:
    """A new ``OUTBOX``'s first sequence: the time in milliseconds (see ``node_streams``)."""
    return now_ns // 1_000_000


def outbox_consumer(org: str) -> SourceConsumer:
    """On a member node: the consumer of its OUTBOX that the hub's ``FROM_<org>`` names."""
    filters = [f"relais.net.{org}.>"]
    return SourceConsumer(OUTBOX, _consumer(OUTBOX_CONSUMER, f"fed.from.{org}", filters))


def _addressed_to(org: str) -> list[str]:
    return [f"relais.net.*.{org}.>", f"relais.net.*.{BROADCAST}.>"]


def hub_member_streams(
    member: Member, *, hub_domain: str, replicas: int = 1, quota: Quota = DEFAULT_QUOTA
) -> list[StreamConfig]:
    """The hub's two streams for one organisation: what it sends, and what is addressed to it.

    The secretariat's are in the ``HUB`` account beside ``ROUTER`` and source it directly; a
    member's are in its own account and reach ``ROUTER`` through the account's imports. Each
    holds at most ``quota``; past it the oldest go (PostgreSQL's outbox is the record)."""
    org = member.org
    if member.domain == hub_domain:
        origin = StreamSource(name=OUTBOX, filter_subject=f"relais.net.{org}.>")
        routed = [StreamSource(name=ROUTER, filter_subject=f) for f in _addressed_to(org)]
    else:
        origin = _durable_source(
            OUTBOX, f"$JS.{member.domain}.API", OUTBOX_CONSUMER, f"fed.from.{org}"
        )
        routed = [_durable_source(ROUTER, HUB_API, to_consumer(org), f"hub.to.{org}")]
    limits = {
        "num_replicas": replicas,
        "max_bytes": quota.max_bytes,
        "max_msgs": quota.max_msgs,
        "max_msg_size": quota.max_msg_size,
    }
    return [
        _stream(f"FROM_{org}", sources=[origin], **limits),
        _stream(f"TO_{org}", sources=routed, **limits),
    ]


def hub_member_consumers(member: Member) -> tuple[list[SourceConsumer], list[SourceConsumer]]:
    """A member's consumers on the hub: those to create before ``ROUTER`` (on ``FROM_<org>``)
    and those after it (on ``ROUTER`` and on ``TO_<org>``)."""
    org, api = member.org, account_api(member.org)
    before = [
        SourceConsumer(
            f"FROM_{org}",
            _consumer(ROUTER_CONSUMER, f"hub.from.{org}", [f"relais.net.{org}.>"]),
            api,
        )
    ]
    after = [
        SourceConsumer(ROUTER, _consumer(to_consumer(org), f"hub.to.{org}", _addressed_to(org))),
        SourceConsumer(f"TO_{org}", _consumer(INBOX_CONSUMER, f"fed.to.{org}", []), api),
    ]
    return before, after


def router_stream(members: list[Member], *, hub_domain: str, replicas: int = 1) -> StreamConfig:
    sources = []
    for m in sorted(members, key=_org):
        if m.domain == hub_domain:
            sources.append(StreamSource(name=f"FROM_{m.org}"))
        else:
            sources.append(
                _durable_source(
                    f"FROM_{m.org}", account_api(m.org), ROUTER_CONSUMER, f"hub.from.{m.org}"
                )
            )
    return _stream(ROUTER, sources=sources, num_replicas=replicas)


def _org(member: Member) -> str:
    return member.org
