"""Every action code the audit logs hold, in one place, with the words a reader sees for it.

The codes are recorded all over the code (``audit_trail.record``, ``record_own``, the auth
store, the backup tool, the hub's network log); this module is their one declared list. The
audit API refuses to filter by a code that is not here (a typo would otherwise find nothing
and look like "no such record"), the dashboard offers them in a picker, translated, and
``tests/unit/test_audit_vocabulary.py`` scans the code and fails when a recorded code is
missing here. The labels are msgids (English) translated by the catalogues.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.contracts.audit import Outcome
from shared.contracts.referrals import Status
from shared.i18n import N_

# The steps of a referral, each recorded as ``referral.<status>`` where it is made, and, at the
# other node, as ``referral.<status>_late`` when it arrives after a step that overrides it.
STEP_LABELS: dict[Status, str] = {
    Status.SENT: N_("Referral sent"),
    Status.RECEIVED: N_("Referral received"),
    Status.ACCEPTED: N_("Referral accepted"),
    Status.IN_PROGRESS: N_("Service started"),
    Status.COMPLETED: N_("Referral completed"),
    Status.DECLINED: N_("Referral declined"),
    Status.CLOSED_UNRESOLVED: N_("Referral closed unresolved"),
    Status.WITHDRAWN: N_("Referral withdrawn"),
    Status.EXPIRED: N_("Referral expired"),
}
LATE = N_("%(step)s (arrived late)")

# Everything else, by the object it concerns. The referral deadlines are the values of
# ``services.referrals.domain.Deadline`` (shared code may not import a service; the scan test
# checks that every deadline has its ``_breached`` code here).
OTHER_LABELS: dict[str, str] = {
    "referral.offered": N_("Referral offered (seen by the hub)"),
    "referral.overdue": N_("Referral overdue (seen by the hub)"),
    "referral.refused": N_("Envelope refused on arrival"),
    "referral.refused_unknown": N_("Refusal of an envelope this node never sent"),
    "referral.refused_by_recipient": N_("Envelope refused by the recipient's node"),
    "referral.payload_read": N_("Personal data read"),
    "referral.consent_revoked": N_("Consent withdrawn"),
    "referral.sent_again": N_("Sent again to another organisation"),
    "referral.key_destroyed": N_("Data key destroyed"),
    "referral.key_destroyed_confirmed": N_("Data key destruction confirmed"),
    "referral.payload_shredded": N_("Personal data erased"),
    "referral.message_sent": N_("Message sent to the other organisation"),
    "referral.message_received": N_("Message received from the other organisation"),
    "referral.messages_read": N_("Conversation read"),
    "referral.message_refused": N_("Message refused on arrival: it did not verify"),
    "referral.message_not_delivered": N_("The other organisation's node refused a message"),
    "referral.attachment_sent": N_("File sent to the other organisation"),
    "referral.attachment_received": N_("File received and verified"),
    "referral.attachment_refused": N_("File refused on arrival: it did not verify"),
    "referral.attachment_checked": N_("The other organisation's node checked a file"),
    "referral.attachments_listed": N_("Files listed"),
    "referral.attachment_read": N_("File downloaded"),
    "referral.acknowledge_breached": N_("Deadline to accept or decline passed"),
    "referral.answer_breached": N_("Deadline to start the service passed"),
    "flood.opened": N_("Flood of refused envelopes parked as one incident"),
    "flood.reported": N_("Flood of refused envelopes reported by a node"),
    "link.second_refused": N_("Second network link with a member's credentials refused"),
    "membership.applied": N_("Membership applied for"),
    "membership.admit": N_("Organisation admitted"),
    "membership.reject": N_("Application rejected"),
    "membership.suspend": N_("Organisation suspended"),
    "membership.reinstate": N_("Organisation reinstated"),
    "membership.leave": N_("Organisation left the network"),
    "organisation.published": N_("Organisation record published"),
    "organisation.replicated": N_("Organisation record received from the hub"),
    "organisation.change_requested": N_("Change to an organisation record requested"),
    "organisation.change_refused": N_("Change to an organisation record refused"),
    "organisation.keys_rotated": N_("Organisation keys rotated"),
    "organisation.keys_revoked": N_("Organisation keys revoked and replaced"),
    "node.data_keys_resealed": N_("Retained data keys sealed again for the current key"),
    "node.retired_keys_forgotten": N_("Retired private keys destroyed"),
    "credentials.renewed": N_("Credentials renewed"),
    "credentials.rekeyed": N_("Credentials renewed with new keys"),
    "directory.exported": N_("Directory exported"),
    "audit.verified": N_("Audit chain verified"),
    "audit.pruned": N_("Old audit records pruned"),
    "audit.exported": N_("Audit log exported"),
    "checkpoint.refused": N_("Audit checkpoint refused"),
    "key.created": N_("Node key created"),
    "session.login": N_("Signed in"),
    "session.login_failed": N_("Sign-in failed"),
    "session.logout": N_("Signed out"),
    "session.login_locked": N_("Sign-in locked after too many attempts"),
    "user.created": N_("Account created"),
    "user.disabled": N_("Account disabled"),
    "user.role_changed": N_("Account's role changed"),
    "user.password_changed": N_("Account's password changed"),
    "session.ended": N_("Session ended by an administrator"),
    "session.ended_all": N_("All sessions of an account ended"),
    "token.created": N_("Access token created"),
    "token.revoked": N_("Access token revoked"),
    "client.created": N_("Member-system client created"),
    "client.revoked": N_("Member-system client revoked"),
    "access.refused": N_("Access refused"),
    "dead_letter.redelivered": N_("Undelivered message sent again"),
    "dead_letter.discarded": N_("Undelivered message discarded"),
    "outbox.replayed": N_("Outgoing messages published again"),
    "node.backup": N_("Node backed up"),
    "node.restored": N_("Node restored from a backup"),
}

# The codes the hub's network log holds (``services.audit.handlers``: offers, steps, overdue
# referrals, publications); the own log may hold every code.
NETWORK_ACTIONS: frozenset[str] = frozenset(
    {"referral.offered", "referral.overdue", "organisation.published"}
    | {f"referral.{status.value}" for status in Status}
)

OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.OK: N_("Done"),
    Outcome.REFUSED: N_("Refused"),
    Outcome.FAILED: N_("Failed"),
}

# The services that act on their own (``audit_trail.system``, the auth store, retention,
# backups): ``system:<name>``.
SYSTEM_ACTORS: dict[str, str] = {
    "system:referrals": N_("Referrals service"),
    "system:directory": N_("Directory service"),
    "system:auth": N_("Sign-in service"),
    "system:audit": N_("Audit service"),
    "system:node": N_("This node (its keys)"),
    "system:retention": N_("Audit retention"),
    "system:backup": N_("Backup tool"),
}


def _codes() -> dict[str, tuple[str, Status | None]]:
    """Each code: its label (msgid) and, for a late step, the step whose label it uses."""
    codes: dict[str, tuple[str, Status | None]] = {}
    for status, label in STEP_LABELS.items():
        codes[f"referral.{status.value}"] = (label, None)
        codes[f"referral.{status.value}_late"] = (LATE, status)
    codes.update({code: (label, None) for code, label in OTHER_LABELS.items()})
    return codes


_CODES = _codes()
ACTIONS: frozenset[str] = frozenset(_CODES)


def is_action(code: str) -> bool:
    return code in _CODES


def action_label(code: str, gettext: Callable[[str], str]) -> str:
    """The words for ``code`` in the language of ``gettext``; an unknown code (an old record,
    a newer node) is shown as it is rather than hidden."""
    found = _CODES.get(code)
    if found is None:
        return code
    label, step = found
    if step is None:
        return gettext(label)
    return gettext(label) % {"step": gettext(STEP_LABELS[step])}


def outcome_label(code: str, gettext: Callable[[str], str]) -> str:
    try:
        return gettext(OUTCOME_LABELS[Outcome(code)])
    except ValueError:
        return code


def actions_of(log: str) -> list[str]:
    """The codes a search of ``log`` ("own" or "network") may find, in a stable order."""
    return sorted(NETWORK_ACTIONS if log == "network" else ACTIONS)
