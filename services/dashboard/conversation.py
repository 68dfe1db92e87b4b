"""The conversation on a referral's page: its messages (decrypted by the referrals API, which
audits the reading and marks the thread read), each with its author's organisation and role
and its time in the reader's zone, and what the form to write one needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.dashboard import labels
from services.dashboard.node_api import ApiRefused, NodeApi
from shared import i18n
from shared.i18n import N_

REFERRALS = "/api/v1/referrals"
ROLE = {"caseworker": N_("Case worker"), "focal_point": N_("Focal point")}
BY = N_("%(org)s, %(role)s")
EMPTY = N_("Write your message first.")
SENT = N_("Message sent. The other organisation receives it as soon as its node is reachable.")
NOT_DELIVERED = N_("Not delivered: %(reason)s")
# Why the other organisation's node refused one of this node's messages.
REFUSAL = {
    "bad_signature": N_("its signature did not verify at the other organisation's node"),
    "unknown_signing_key": N_("the other organisation's node does not know the key that signed it"),
}
CLOSED = N_(
    "The conversation has ended: the referral closed too long ago, consent was withdrawn or its"
    " data was erased."
)


@dataclass(frozen=True)
class Message:
    by: str
    at: str
    at_iso: str
    text: str | None
    mine: bool
    not_delivered: str | None = None  # why the other node refused it, said in the reader's language


@dataclass(frozen=True)
class Thread:
    messages: list[Message] = field(default_factory=list)
    unread: int = 0
    may_write: bool = False
    max_chars: int = 4000


def said(lang: str, message: dict[str, Any], orgs: dict[str, str]) -> Message:
    """One message of the API's thread as the page shows it."""
    gettext = i18n.translations(lang).gettext
    org = str(message.get("by_org") or "")
    role = labels.word(ROLE, message.get("by_role"), lang)
    text = message.get("text")
    refused = message.get("refused_reason")
    not_delivered = None
    if isinstance(refused, str) and refused:
        not_delivered = gettext(NOT_DELIVERED) % {"reason": labels.word(REFUSAL, refused, lang)}
    return Message(
        by=gettext(BY) % {"org": orgs.get(org, org), "role": role},
        at=labels.moment(message.get("at"), lang),
        at_iso=str(message.get("at") or ""),
        text=text if isinstance(text, str) else None,
        mine=bool(message.get("mine")),
        not_delivered=not_delivered,
    )


async def thread(api: NodeApi, referral_id: str, lang: str, orgs: dict[str, str]) -> Thread:
    """The referral's conversation, read (and audited) through the API."""
    try:
        found = await api.get(f"{REFERRALS}/{referral_id}/messages")
    except ApiRefused:
        return Thread()
    if not isinstance(found, dict):
        return Thread()
    return Thread(
        messages=[said(lang, m, orgs) for m in found.get("messages") or [] if isinstance(m, dict)],
        unread=int(found.get("unread") or 0),
        may_write=bool(found.get("may_write")),
        max_chars=int(found.get("max_chars") or 4000),
    )
