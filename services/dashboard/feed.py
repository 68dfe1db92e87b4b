"""One notification of the feed, written from its facts in the page's language.

The notifications API owns the facts (kind, sender, recipient, category, urgency, deadline);
the words are the dashboard's: the sentence of what happened, the organisations by the names
the directory gives them in that language, the times through ``labels``. The feed page and its
live updates render the same ``FeedEntry`` with the same partial (``notifications_items.html``),
grouped by referral (``grouped``): a referral's notifications together under its heading,
the group placed by its newest item.

Pure: the names come in as tables, so each kind's wording has plain unit tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.dashboard import labels
from shared import i18n
from shared.i18n import N_

# What happened, per kind. %(from)s and %(to)s are organisations' names; %(status)s a state.
HEADLINE = {
    "referral_received": N_("%(from)s sent your organisation a referral"),
    "referral_outcome": N_("%(to)s answered your referral: %(status)s"),
    "referral_closed": N_("The referral from %(from)s is closed: %(status)s"),
    "consent_revoked": N_(
        "Consent was withdrawn for the referral from %(from)s to %(to)s: its data is erased"
    ),
    "data_erased": N_("%(to)s erased the data of your referral"),
    "deadline_reminder": N_("A deadline comes near: referral from %(from)s to %(to)s"),
    "deadline_breach": N_("A deadline passed: referral from %(from)s to %(to)s"),
    "referral_escalated": N_("A referral from %(from)s to %(to)s passed its deadline"),
    "membership_changed": N_("Your organisation's membership is now: %(membership)s"),
    "keys_changed": N_("Your organisation's public keys changed in the directory"),
    "webhook_disabled": N_("A webhook was disabled after repeated failures"),
    "inbox_message": N_("%(from)s wrote a message on a referral to your organisation"),
    "outbox_message": N_("%(to)s wrote a message on your referral"),
    "inbox_file": N_("%(from)s sent a document on a referral to your organisation"),
    "outbox_file": N_("%(to)s sent a document on your referral"),
    "login_locked": N_("Sign-in to a Relais account was locked after too many wrong passwords"),
    "second_link_refused": N_(
        "The hub refused a second network link made with your node's credentials"
    ),
}
UNKNOWN_KIND = N_("A notification of a kind this page does not know yet")
AN_ORGANISATION = N_("an organisation")
FROM = N_("From")
TO = N_("To")
CATEGORY = N_("Service")  # as the inbox calls the category
URGENCY = N_("Urgency")
DEADLINE = N_("Deadline")
# The heading of one referral's notifications in the feed.
ABOUT_REFERRAL = N_("Referral from %(from)s to %(to)s")


@dataclass(frozen=True)
class FeedEntry:
    """A feed item as the page shows it."""

    id: str
    kind: str
    headline: str
    details: list[tuple[str, str]]  # (label, value): from, to, category, deadline
    urgency: str | None  # the code, for the badge's colour
    urgency_label: str
    link: str | None
    read: bool
    emergency: bool
    at: str
    at_iso: str
    referral_id: str | None = None
    about: str = ""  # the heading of its referral's group: from whom to whom, which service


@dataclass(frozen=True)
class FeedGroup:
    """One referral's notifications, newest first (or one notification about no referral)."""

    key: str  # the referral's id, or the lone notification's
    heading: str  # empty for a notification about no referral
    items: list[FeedEntry]


def grouped(entries: list[FeedEntry]) -> list[FeedGroup]:
    """``entries`` (newest first) gathered by referral; the groups in the order of their
    newest item, so the feed still reads newest first."""
    groups: dict[str, FeedGroup] = {}
    for one in entries:
        key = one.referral_id or f"notification-{one.id}"
        if key not in groups:
            groups[key] = FeedGroup(key, one.about, [])
        groups[key].items.append(one)
    return list(groups.values())


def link_of(facts: Mapping[str, Any], reader_org: str) -> str | None:
    """Where an item leads, only where the reader may go: a referral's page for the two
    organisations party to it (a coordinator at the hub is told of an escalation but does not
    see the referral), an organisation's directory record."""
    referral = facts.get("referral_id")
    if referral:
        parties = {facts.get("from_org"), facts.get("to_org")}
        return f"/referrals/{referral}" if reader_org in parties else None
    if facts.get("org_id"):
        return f"/directory/{facts['org_id']}"
    return None


def entry(
    item: Mapping[str, Any],
    lang: str,
    *,
    reader_org: str,
    org_names: Mapping[str, str],
    categories: Mapping[str, str],
) -> FeedEntry:
    """``item`` (one of the API's feed items) in ``lang``."""
    gettext = i18n.translations(lang).gettext
    facts: Mapping[str, Any] = item.get("facts") or {}
    kind = str(item.get("kind", ""))

    def org(field: str) -> str:
        code = facts.get(field)
        if not code:
            return gettext(AN_ORGANISATION)
        return org_names.get(str(code), str(code))

    status = facts.get("change") or facts.get("status")
    words = {
        "from": org("from_org"),
        "to": org("to_org"),
        "status": labels.word(labels.CHANGE, status, lang) if status else "",
        "membership": labels.word(labels.MEMBERSHIP, facts.get("membership"), lang),
    }
    message = HEADLINE.get(kind)
    headline = gettext(message) % words if message else gettext(UNKNOWN_KIND)
    nobody = gettext(AN_ORGANISATION)
    if headline.startswith(nobody):  # "une organisation a..." starts a sentence
        headline = headline[:1].upper() + headline[1:]

    details: list[tuple[str, str]] = []
    if facts.get("from_org"):
        details.append((gettext(FROM), words["from"]))
    if facts.get("to_org"):
        details.append((gettext(TO), words["to"]))
    category = facts.get("category")
    if category:
        details.append((gettext(CATEGORY), categories.get(category, category)))
    due = labels.moment(facts.get("due_at"), lang)
    if due:
        deadline = facts.get("deadline")
        name = labels.word(labels.DEADLINE, deadline, lang) if deadline else ""
        details.append((name or gettext(DEADLINE), due))
    urgency = facts.get("urgency")
    referral = str(facts["referral_id"]) if facts.get("referral_id") else None
    about = ""
    if referral:
        about = gettext(ABOUT_REFERRAL) % {"from": words["from"], "to": words["to"]}
        if category:
            about = f"{about} · {categories.get(category, category)}"
    return FeedEntry(
        id=str(item.get("id", "")),
        kind=kind,
        headline=headline,
        details=details,
        urgency=urgency,
        urgency_label=labels.word(labels.URGENCY, urgency, lang) if urgency else "",
        link=link_of(facts, reader_org),
        read=bool(item.get("read", False)),
        emergency=bool(item.get("emergency", False)),
        at=labels.moment(item.get("created_at"), lang),
        at_iso=str(item.get("created_at", "")),
        referral_id=referral,
        about=about,
    )
