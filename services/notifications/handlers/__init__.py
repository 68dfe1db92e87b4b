"""The notifications use cases, one module per job: events become notifications (``events``),
the worker sends what is due (``worker``) and the daily digests (``digests``), webhooks are
registered, enabled and disabled (``webhooks``), all for the running service (``notifier``)."""

from services.notifications.handlers.digests import digest_cutoff, send_digests
from services.notifications.handlers.events import (
    CONSUMER,
    SCHEMA,
    notify,
    on_audit_recorded,
    on_deadline,
    on_escalated,
    on_organisation,
    on_referral_changed,
    on_referral_events,
    on_second_link_refused,
    write,
)
from services.notifications.handlers.notifier import Notifier, active_staff, notifier_of
from services.notifications.handlers.webhooks import (
    disable_failing_webhook,
    enable_webhook,
    register_webhook,
    seal_clear_secrets,
)
from services.notifications.handlers.worker import BATCH, Skip, run_worker, send_due

__all__ = [
    "BATCH",
    "CONSUMER",
    "SCHEMA",
    "Notifier",
    "Skip",
    "active_staff",
    "digest_cutoff",
    "disable_failing_webhook",
    "enable_webhook",
    "notifier_of",
    "notify",
    "on_audit_recorded",
    "on_deadline",
    "on_escalated",
    "on_organisation",
    "on_referral_changed",
    "on_referral_events",
    "on_second_link_refused",
    "register_webhook",
    "run_worker",
    "seal_clear_secrets",
    "send_digests",
    "send_due",
    "write",
]
