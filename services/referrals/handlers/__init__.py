"""The referrals use cases, one module per concern; each runs in one transaction: the state
change, its history, the event for the other node, the events for this node's services and
the audit record commit together."""

from services.referrals.handlers.attachments import (
    attach,
    list_attachments,
    read_attachment,
    receive_attached,
    receive_chunk,
    record_check,
)
from services.referrals.handlers.common import CASE_ROLES, INBOX_CONSUMER, check_caller, load
from services.referrals.handlers.consent import (
    confirm_key_destroyed,
    destroy_key,
    expire_consents,
    revoke_consent,
)
from services.referrals.handlers.deadlines import fire_due_alarms, shred_expired_payloads
from services.referrals.handlers.messages import (
    read_messages,
    receive_message,
    record_message_refusal,
    write_message,
)
from services.referrals.handlers.payload import read_payload
from services.referrals.handlers.receiving import receive_offer, record_refusal
from services.referrals.handlers.sending import ConsentIn, NewReferral, create
from services.referrals.handlers.steps import StepIn, act, apply_step

__all__ = [
    "CASE_ROLES",
    "INBOX_CONSUMER",
    "ConsentIn",
    "NewReferral",
    "StepIn",
    "act",
    "apply_step",
    "attach",
    "check_caller",
    "confirm_key_destroyed",
    "create",
    "destroy_key",
    "expire_consents",
    "fire_due_alarms",
    "list_attachments",
    "load",
    "read_attachment",
    "read_messages",
    "read_payload",
    "receive_attached",
    "receive_chunk",
    "receive_message",
    "receive_offer",
    "record_check",
    "record_message_refusal",
    "record_refusal",
    "revoke_consent",
    "shred_expired_payloads",
    "write_message",
]
