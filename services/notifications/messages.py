"""What a notification says, in the reader's language: its title, the lines of detail, and the
e-mail (HTML and plain text), SMS and digest made of them.

Only ``Facts.outside_view()`` goes into anything that leaves the node. Texts come from the
gettext catalogues (``shared/locales``); the mail's HTML from ``templates/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from services.notifications.domain import Facts, Kind
from shared import i18n, zones
from shared.i18n import N_

TEMPLATES = Path(__file__).parent / "templates"
CONTEXT = "notification"  # short labels, kept apart from the pages' same words


def pgettext(context: str, message: str) -> str:
    """Mark ``message`` for extraction in ``context``; translated where the language is known."""
    return message


TITLES: dict[Kind, str] = {
    Kind.REFERRAL_RECEIVED: N_("A new referral is waiting for your organisation"),
    Kind.REFERRAL_OUTCOME: N_("Update on your referral: %(status)s"),
    Kind.REFERRAL_CLOSED: N_("A referral to your organisation was closed: %(status)s"),
    Kind.CONSENT_REVOKED: N_("Consent was withdrawn for a referral; its data is being erased"),
    Kind.DATA_ERASED: N_("The receiving organisation erased the data of your referral"),
    Kind.DEADLINE_REMINDER: N_("Reminder: %(deadline)s due %(due_at)s"),
    Kind.DEADLINE_BREACH: N_("Deadline passed: %(deadline)s was due %(due_at)s"),
    Kind.REFERRAL_ESCALATED: N_("Escalation: a referral passed its deadline (%(deadline)s)"),
    Kind.MEMBERSHIP_CHANGED: N_("Your organisation's membership is now: %(membership)s"),
    Kind.KEYS_CHANGED: N_("Your organisation's public keys changed in the directory"),
    Kind.WEBHOOK_DISABLED: N_("A webhook was disabled after repeated failures"),
    # What the message says never leaves the node: only that there is one, and on what.
    Kind.INBOX_MESSAGE: N_(
        "A new message on a referral to your organisation: %(urgency)s, %(category)s"
    ),
    Kind.OUTBOX_MESSAGE: N_("A new message on your referral: %(urgency)s, %(category)s"),
    # Neither the file's name nor its content: only that one arrived, and on what.
    Kind.INBOX_FILE: N_(
        "A new document on a referral to your organisation: %(urgency)s, %(category)s"
    ),
    Kind.OUTBOX_FILE: N_("A new document on your referral: %(urgency)s, %(category)s"),
    Kind.LOGIN_LOCKED: N_("Sign-in to a Relais account was locked after too many wrong passwords"),
    Kind.SECOND_LINK_REFUSED: N_(
        "The hub refused a second network link made with your node's credentials"
    ),
}
LABELS: dict[str, str] = {
    # urgency
    "emergency": pgettext("notification", "Emergency"),
    "priority": pgettext("notification", "Priority"),
    "routine": pgettext("notification", "Routine"),
    # referral status and changes
    "sent": pgettext("notification", "Sent"),
    "received": pgettext("notification", "Received"),
    "accepted": pgettext("notification", "Accepted"),
    "in_progress": pgettext("notification", "In progress"),
    "completed": pgettext("notification", "Completed"),
    "declined": pgettext("notification", "Declined"),
    "closed_unresolved": pgettext("notification", "Closed, unresolved"),
    "withdrawn": pgettext("notification", "Withdrawn"),
    "expired": pgettext("notification", "Expired"),
    "refused": pgettext("notification", "Not delivered"),
    # deadlines
    "acknowledge": pgettext("notification", "acknowledgement"),
    "answer": pgettext("notification", "answer"),
    # membership
    "applicant": pgettext("notification", "Applicant"),
    "active": pgettext("notification", "Active"),
    "suspended": pgettext("notification", "Suspended"),
    "left": pgettext("notification", "Left the network"),
}
CATEGORY = pgettext("notification", "Category")
URGENCY = pgettext("notification", "Urgency")
DEADLINE = pgettext("notification", "Deadline")
OPEN = N_("Open in Relais")
NO_PERSONAL_DATA = N_(
    "This message carries no personal data. Log in to Relais to see the referral."
)
DIGEST_SUBJECT = N_("Relais: your daily digest (%(count)s notifications)")
DIGEST_INTRO = N_("What happened since your last digest:")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Item:
    """One notification as a reader sees it: a title, lines of detail, a link."""

    title: str
    details: list[tuple[str, str]]
    link: str


class Writer:
    """Writes notifications in one language, with times in the node's time zone."""

    def __init__(
        self,
        lang: str,
        *,
        base_url: str,
        timezone: str,
        categories: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.lang = lang if lang in i18n.SUPPORTED else i18n.DEFAULT
        self.base_url = base_url
        self.categories = categories or {}
        try:
            self.zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            self.zone = ZoneInfo("UTC")
        self._ = i18n.translations(self.lang).gettext
        self._t = i18n.translations(self.lang)

    def _p(self, message: str) -> str:
        """``message`` translated in the labels' context."""
        return str(self._t.pgettext(CONTEXT, message))

    def label(self, code: str | None) -> str:
        if code is None:
            return ""
        known = LABELS.get(code)
        return self._p(known) if known else code.replace("_", " ")

    def category(self, code: str) -> str:
        """The category's name in the reader's language (the code until the directory said)."""
        labels = self.categories.get(code, {})
        return labels.get(self.lang) or labels.get(i18n.DEFAULT) or code

    def when(self, moment: datetime | None) -> str:
        """``moment`` in the reader's zone, named: "3 déc. 2026, 14:30:00 (heure du Maroc)"."""
        if moment is None:
            return ""
        shown = format_datetime(moment, "medium", tzinfo=self.zone, locale=self.lang)
        return f"{shown} ({zones.zone_name(self.zone, self.lang)})"

    def link(self, facts: Facts) -> str:
        if facts.referral_id:
            return f"{self.base_url}/referrals/{facts.referral_id}"
        if facts.org_id:
            return f"{self.base_url}/directory/{facts.org_id}"
        return f"{self.base_url}/"

    def item(self, kind: Kind, facts: Facts) -> Item:
        title = self._(TITLES[kind]) % {
            "status": self.label(facts.change or facts.status),
            "deadline": self.label(facts.deadline),
            "due_at": self.when(facts.due_at),
            "membership": self.label(facts.membership),
            "urgency": self.label(facts.urgency),
            "category": self.category(facts.category) if facts.category else "",
        }
        details = []
        if facts.category:
            details.append((self._p(CATEGORY), self.category(facts.category)))
        if facts.urgency:
            details.append((self._p(URGENCY), self.label(facts.urgency)))
        if facts.due_at:
            details.append((self._p(DEADLINE), self.when(facts.due_at)))
        return Item(title, details, self.link(facts))

    def title(self, kind: Kind, facts: Facts) -> str:
        return self.item(kind, facts).title

    def mail(self, items: Sequence[Item], *, subject: str, intro: str | None = None) -> Rendered:
        lines = [intro, ""] if intro else []
        for item in items:
            lines.append(item.title)
            lines.extend(f"  {name}: {value}" for name, value in item.details)
            lines.append(f"  {self._(OPEN)}: {item.link}")
            lines.append("")
        lines.append(self._(NO_PERSONAL_DATA))
        html = (
            i18n.environment(TEMPLATES, self.lang)
            .get_template("mail.html")
            .render(subject=subject, intro=intro, items=items)
        )
        return Rendered(subject, "\n".join(lines) + "\n", html)

    def single(self, kind: Kind, facts: Facts) -> Rendered:
        item = self.item(kind, facts)
        prefix = f"[{self.label(facts.urgency)}] " if facts.emergency else ""
        return self.mail([item], subject=f"Relais: {prefix}{item.title}")

    def digest(self, entries: Sequence[tuple[Kind, Facts]]) -> Rendered:
        items = [self.item(kind, facts) for kind, facts in entries]
        subject = self._(DIGEST_SUBJECT) % {"count": len(items)}
        return self.mail(items, subject=subject, intro=self._(DIGEST_INTRO))

    def sms(self, rendered: Rendered, items: Sequence[Item]) -> str:
        link = items[0].link if len(items) == 1 else f"{self.base_url}/"
        return f"{rendered.subject} {link}"[:600]


def email_message(rendered: Rendered, *, to: str, sender: str, lang: str) -> Message:
    """A multipart/alternative message: plain text first, then HTML.

    Built with ``email.mime`` (the ``compat32`` policy: headers kept as given, the bodies in
    base64) when both addresses are ASCII, as a node's are: the default policy parses every
    header it is given and picks each body's encoding by trying them, about four times the
    CPU for the same mail (most of a receiving node's cost of a referral's mail in the
    bench's profile). An address in UTF-8 takes the default policy, which encodes it."""
    if not (to.isascii() and sender.isascii()):
        return _email_message_utf8(rendered, to=to, sender=sender, lang=lang)
    message = MIMEMultipart("alternative")
    message["From"] = sender
    message["To"] = to
    message["Subject"] = Header(rendered.subject, "utf-8")  # type: ignore[assignment]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = lang
    message.attach(MIMEText(rendered.text, "plain", "utf-8"))
    message.attach(MIMEText(rendered.html, "html", "utf-8"))
    return message


def _email_message_utf8(rendered: Rendered, *, to: str, sender: str, lang: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    message["Content-Language"] = lang  # after the parts: set_content drops Content-* headers
    return message
