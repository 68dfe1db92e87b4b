"""The member systems' event feed: the organisation's referral events, kept for each client.

One ``FEED`` stream on the node's own JetStream domain sources, from ``LOCAL``, the referral
events a member system follows (``relais.local.referrals.changed`` and ``…deadline``: ids,
status, category, urgency, deadlines; never the person's data). Each member-system client has
its own durable pull consumer on it, named after the client: what the client has not
acknowledged waits there while it is away, across restarts of the client, of the node's
nats-server and of the node. Delivery is at least once; the CloudEvent ``id`` tells a
redelivery from a new event.

The client may use only its own consumer's API (``shared.nats_users``): information, the next
messages, and acknowledgements.
"""

from __future__ import annotations

import re
from datetime import timedelta

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)

FEED = "FEED"
LOCAL = "LOCAL"
SUBJECTS = ("relais.local.referrals.changed", "relais.local.referrals.deadline")
RETENTION = timedelta(days=30)  # longer than LOCAL's week: a system away for a fortnight
ACK_WAIT = timedelta(seconds=30)
CLIENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")  # one subject token: it names subjects


def stream() -> StreamConfig:
    return StreamConfig(
        name=FEED,
        description="member systems' feed: the organisation's referral events, metadata only",
        sources=[StreamSource(name=LOCAL, filter_subject=subject) for subject in SUBJECTS],
        storage=StorageType.FILE,
        max_age=RETENTION.total_seconds(),
    )


def consumer(client: str) -> ConsumerConfig:
    """A client's durable pull consumer: from the oldest event the feed keeps."""
    return ConsumerConfig(
        durable_name=client,
        name=client,
        description=f"the feed of member system {client}",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT.total_seconds(),
        max_ack_pending=1000,
    )


def api_subjects(client: str) -> list[str]:
    """The JetStream API subjects a client may publish to: its own consumer's only."""
    return [
        f"$JS.API.CONSUMER.INFO.{FEED}.{client}",
        f"$JS.API.CONSUMER.MSG.NEXT.{FEED}.{client}",
        f"$JS.ACK.{FEED}.{client}.>",
    ]
