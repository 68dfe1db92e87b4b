"""What the audit service listens to: every record the node's services write (``LOCAL``); on
the hub, every node's checkpoints (``INBOX``) and the metadata crossing ``ROUTER``."""

from __future__ import annotations

from collections.abc import Sequence

from services.audit import handlers
from shared.bus import Delivery, Subscription
from shared.contracts.audit import AuditCheckpointed, AuditRecorded
from shared.contracts.directory import OrganisationPublished
from shared.contracts.referrals import ReferralEscalated, ReferralOffered, ReferralTransitioned
from shared.events import CloudEvent, Payload
from shared.federation import INBOX, LOCAL, ROUTER
from shared.service import ServiceContext


def records(ctx: ServiceContext) -> Subscription:
    async def chain_batch(items: Sequence[tuple[CloudEvent, Payload, Delivery]]) -> None:
        await handlers.chain_records(ctx, items)

    return Subscription.routing(
        LOCAL,
        "audit",
        {AuditRecorded: ctx.bound(handlers.chain_record)},
        batch=200,
        batch_handler=chain_batch,
    )


def checkpoints(ctx: ServiceContext) -> Subscription:
    return Subscription.routing(
        INBOX, "audit", {AuditCheckpointed: ctx.bound(handlers.receive_checkpoint)}
    )


def network(ctx: ServiceContext) -> Subscription:
    async def log_batch(items: Sequence[tuple[CloudEvent, Payload, Delivery]]) -> None:
        await handlers.log_network_batch(ctx, items)

    log = ctx.bound(handlers.log_network)
    return Subscription.routing(
        ROUTER,
        "audit-network",
        {
            ReferralOffered: log,
            ReferralTransitioned: log,
            ReferralEscalated: log,
            OrganisationPublished: log,
        },
        own_broadcasts=True,
        batch=200,
        batch_handler=log_batch,
    )
