"""What the audit service listens to: every record the node's services write (``LOCAL``); on
the hub, every node's checkpoints (``INBOX``) and the metadata crossing ``ROUTER``."""

from __future__ import annotations

from typing import Any

from services.audit import handlers
from shared.bus import Delivery, Handler, Subscription
from shared.contracts.audit import AuditCheckpointed, AuditRecorded
from shared.contracts.directory import OrganisationPublished
from shared.contracts.referrals import ReferralEscalated, ReferralOffered, ReferralTransitioned
from shared.events import CloudEvent, Payload
from shared.federation import INBOX, LOCAL, ROUTER
from shared.service import ServiceContext


def _bound(ctx: ServiceContext, handler: Any) -> Handler:
    async def handle(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
        await handler(ctx, event, payload, delivery)

    return handle


def records(ctx: ServiceContext) -> Subscription:
    return Subscription.routing(
        LOCAL, "audit", {AuditRecorded: _bound(ctx, handlers.chain_record)}, batch=200
    )


def checkpoints(ctx: ServiceContext) -> Subscription:
    return Subscription.routing(
        INBOX, "audit", {AuditCheckpointed: _bound(ctx, handlers.receive_checkpoint)}
    )


def network(ctx: ServiceContext) -> Subscription:
    return Subscription.routing(
        ROUTER,
        "audit-network",
        {
            ReferralOffered: _bound(ctx, handlers.log_offer),
            ReferralTransitioned: _bound(ctx, handlers.log_transition),
            ReferralEscalated: _bound(ctx, handlers.log_escalation),
            OrganisationPublished: _bound(ctx, handlers.log_publication),
        },
        own_broadcasts=True,
    )
