"""What the directory listens to: the hub's broadcasts of the roster, and link probes."""

from __future__ import annotations

from typing import Any

from services.directory import handlers
from shared.bus import Delivery, Handler, Subscription
from shared.contracts.directory import (
    LinkAnswered,
    LinkProbed,
    OrganisationChangeRefused,
    OrganisationChangeRequested,
    OrganisationPublished,
)
from shared.events import CloudEvent, Payload
from shared.federation import INBOX
from shared.service import ServiceContext


def subscriptions(ctx: ServiceContext) -> list[Subscription]:
    def bound(handler: Any) -> Handler:
        async def handle(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            await handler(ctx, event, payload, delivery)

        return handle

    return [
        Subscription.routing(
            INBOX,
            "directory",
            {
                OrganisationPublished: bound(handlers.replicate_organisation),
                LinkProbed: bound(handlers.answer_probe),
                LinkAnswered: bound(handlers.record_answer),
                OrganisationChangeRequested: bound(handlers.apply_change_request),
                OrganisationChangeRefused: bound(handlers.record_refusal),
            },
        )
    ]
