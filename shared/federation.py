"""The JetStream topology of the federation (DESIGN.md §3): which streams each node declares.

On every node: ``OUTBOX`` (what the node sends, ``relais.net.<org>.>``), ``INBOX`` (sources the
hub's ``TO_<org>``), ``LOCAL`` (``relais.local.>``) and ``DEADLETTER`` (advisories of messages
that were terminated or ran out of deliveries). On the hub, per member: ``FROM_<org>`` sources
that node's ``OUTBOX`` across domains, filtered on its own sender token so nobody can send as
another; one ``ROUTER`` sources every ``FROM_*``; ``TO_<org>`` sources ``ROUTER`` filtered on
what is addressed to the org or to everyone: 2N source links, not N².
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import (
    DiscardPolicy,
    ExternalStream,
    StorageType,
    StreamConfig,
    StreamSource,
)

from shared.events import BROADCAST

DAY = 24 * 3600.0
OUTBOX, INBOX, LOCAL, DEADLETTER, ROUTER = "OUTBOX", "INBOX", "LOCAL", "DEADLETTER", "ROUTER"
ADVISORIES = (
    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>",
    "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>",
)


@dataclass(frozen=True)
class Member:
    """An organisation as the hub's topology sees it: its id and its node's JetStream domain."""

    org: str
    domain: str


def _stream(name: str, **kwargs: object) -> StreamConfig:
    settings: dict[str, object] = {
        "storage": StorageType.FILE,
        "max_age": 30 * DAY,  # PostgreSQL is the record; the broker holds what is in flight
        "discard": DiscardPolicy.OLD,
        "duplicate_window": 120.0,
    }
    return StreamConfig(name=name, **{**settings, **kwargs})  # type: ignore[arg-type]


def _from_hub_or_local(name: str, hub_domain: str, local: bool, deliver: str) -> StreamSource:
    if local:
        return StreamSource(name=name)
    return StreamSource(
        name=name, external=ExternalStream(api=f"$JS.{hub_domain}.API", deliver=deliver)
    )


def node_streams(org: str, *, hub_domain: str, is_hub: bool) -> list[StreamConfig]:
    """The streams every node declares on its own JetStream domain."""
    return [
        _stream(OUTBOX, subjects=[f"relais.net.{org}.>"]),
        _stream(
            INBOX,
            sources=[_from_hub_or_local(f"TO_{org}", hub_domain, is_hub, f"fed.to.{org}")],
        ),
        _stream(LOCAL, subjects=["relais.local.>"], max_age=7 * DAY),
        _stream(DEADLETTER, subjects=list(ADVISORIES), max_age=90 * DAY),
    ]


def hub_member_streams(member: Member, *, hub_domain: str, replicas: int = 1) -> list[StreamConfig]:
    """The hub's two streams for one member: what it sends, and what is addressed to it."""
    if member.domain == hub_domain:
        origin = StreamSource(name=OUTBOX, filter_subject=f"relais.net.{member.org}.>")
    else:
        origin = StreamSource(
            name=OUTBOX,
            filter_subject=f"relais.net.{member.org}.>",
            external=ExternalStream(
                api=f"$JS.{member.domain}.API", deliver=f"fed.from.{member.org}"
            ),
        )
    return [
        _stream(f"FROM_{member.org}", sources=[origin], num_replicas=replicas),
        _stream(
            f"TO_{member.org}",
            num_replicas=replicas,
            sources=[
                StreamSource(name=ROUTER, filter_subject=f"relais.net.*.{member.org}.>"),
                StreamSource(name=ROUTER, filter_subject=f"relais.net.*.{BROADCAST}.>"),
            ],
        ),
    ]


def router_stream(members: list[Member], *, replicas: int = 1) -> StreamConfig:
    return _stream(
        ROUTER,
        sources=[StreamSource(name=f"FROM_{m.org}") for m in sorted(members, key=_org)],
        num_replicas=replicas,
    )


def _org(member: Member) -> str:
    return member.org
