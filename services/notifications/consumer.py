"""What notifications listen to: a referral's changes and deadlines on this node (``LOCAL``),
and from the network (``INBOX``) escalations (at the hub) and directory records (its own
organisation's membership and keys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.notifications import handlers
from services.notifications.handlers import Notifier
from shared.bus import Delivery, Handler, Subscription
from shared.contracts.audit import AuditRecorded
from shared.contracts.directory import OrganisationPublished, SecondLinkRefused
from shared.contracts.referrals import ReferralChanged, ReferralDeadline, ReferralEscalated
from shared.events import CloudEvent, Payload, registry
from shared.federation import INBOX, LOCAL


def subscriptions(n: Notifier) -> list[Subscription]:
    def bound(handler: Callable[[Notifier, CloudEvent, Any], Awaitable[None]]) -> Handler:
        async def handle(event: CloudEvent, payload: Payload, _: Delivery) -> None:
            await handler(n, event, payload)

        return handle

    def with_delivery(
        handler: Callable[[Notifier, CloudEvent, Any, Delivery], Awaitable[None]],
    ) -> Handler:
        async def handle(event: CloudEvent, payload: Payload, delivery: Delivery) -> None:
            await handler(n, event, payload, delivery)

        return handle

    return [
        # The account service's own audit records only (logins, accounts, tokens): a sign-in
        # locked after too many wrong passwords is told to the admins and the account's owner.
        Subscription(
            LOCAL,
            f"{handlers.CONSUMER}_auth",
            [registry.for_payload(AuditRecorded).subject(service="auth")],
            bound(handlers.on_audit_recorded),
        ),
        Subscription.routing(
            LOCAL,
            handlers.CONSUMER,
            {
                ReferralChanged: bound(handlers.on_referral_changed),
                ReferralDeadline: bound(handlers.on_deadline),
            },
            batch_handler=lambda items: handlers.on_referral_events(n, items),
        ),
        Subscription.routing(
            INBOX,
            handlers.CONSUMER,
            {
                ReferralEscalated: bound(handlers.on_escalated),
                OrganisationPublished: bound(handlers.on_organisation),
                SecondLinkRefused: with_delivery(handlers.on_second_link_refused),
            },
        ),
    ]
