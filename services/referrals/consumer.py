"""What the referrals service listens to: the other organisations' envelopes, steps,
messages and files in the node's INBOX, one durable consumer applying each once, in a lane per
sender."""

from __future__ import annotations

from services.referrals import floods, handlers
from services.referrals.handlers.common import INBOX_MAX_DELIVER
from shared.bus import Subscription
from shared.contracts.referrals import (
    ConsentRevoked,
    KeyDestroyed,
    ReferralAttached,
    ReferralAttachmentChecked,
    ReferralChunk,
    ReferralMessaged,
    ReferralMessageRefused,
    ReferralOffered,
    ReferralRefused,
    ReferralTransitioned,
)
from shared.federation import INBOX
from shared.service import ServiceContext


def subscriptions(ctx: ServiceContext) -> list[Subscription]:
    return [
        Subscription.routing(
            INBOX,
            "referrals",
            {
                ReferralOffered: ctx.bound(handlers.receive_offer),
                ReferralTransitioned: ctx.bound(handlers.apply_step),
                ReferralRefused: ctx.bound(handlers.record_refusal),
                ConsentRevoked: ctx.bound(handlers.destroy_key),
                KeyDestroyed: ctx.bound(handlers.confirm_key_destroyed),
                ReferralMessaged: ctx.bound(handlers.receive_message),
                ReferralMessageRefused: ctx.bound(handlers.record_message_refusal),
                ReferralAttached: ctx.bound(handlers.receive_attached),
                ReferralChunk: ctx.bound(handlers.receive_chunk),
                ReferralAttachmentChecked: ctx.bound(handlers.record_check),
            },
            # An envelope can arrive before its sender's record reached this replica, or a
            # step before its envelope was retried: retry for about an hour before parking.
            max_deliver=INBOX_MAX_DELIVER,
            retry_delays=(1.0, 5.0, 15.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0),
            # Past a sender's budget of refused envelopes, one incident instead of a dead
            # letter each.
            absorb=lambda delivery, reason: floods.refused(ctx, delivery, reason),
            # A lane per sender: a member's flood queues behind itself, not before the others'
            # referrals; fetched ahead far enough to reach the others behind a large one.
            lanes=True,
            max_ack_pending=10_000,
        )
    ]
