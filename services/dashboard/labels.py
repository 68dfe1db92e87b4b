"""What the pages call things, in the reader's language: the referral's words (status, urgency,
legal basis, actions), the directory's reasons for a suggestion, the labels the APIs send in
three languages, the clock to a deadline, and the API's field errors.

Every time a person reads is in the node's zone (``RELAIS_TIMEZONE``, ``Africa/Casablanca`` by
default: UTC+1, UTC+0 during Ramadan), set once when the dashboard starts (``use_zone``), or in
the zone the reader chose in their preferences, set for the request being answered
(``reading_in``); the machine-readable form beside it (``datetime=``) stays ISO 8601 with its
offset.

Pure functions over plain values; the gettext catalogues hold the words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta
from babel.lists import format_list

from shared import i18n, zones
from shared.i18n import N_
from shared.settings import DEFAULT_TIMEZONE

# The node's zone; one node is one process, so the dashboard's start sets it for every page.
_node_zone = ZoneInfo(DEFAULT_TIMEZONE)
# The zone of the reader of the page being rendered, if they chose one (a request's context).
_reader_zone: ContextVar[ZoneInfo | None] = ContextVar("reader_zone", default=None)


def use_zone(name: str) -> None:
    """Show every time in ``name`` (an IANA zone the node's settings have checked)."""
    global _node_zone
    _node_zone = ZoneInfo(name)


def node_zone() -> ZoneInfo:
    """The node's zone, whoever reads: the zone the APIs count their days and months in."""
    return _node_zone


def reading_in(name: str | None) -> None:
    """Show this request's times in ``name``, the reader's choice (the node's zone if None or
    not a zone). Set in the request's own context, so concurrent pages do not mix."""
    _reader_zone.set(zones.zone_or(name, _node_zone.key) if name else None)


def zone() -> ZoneInfo:
    return _reader_zone.get() or _node_zone


def zone_note(lang: str) -> str:
    """The zone the times are in, named for the reader: "Moroccan time" at home."""
    return zones.zone_name(zone(), lang)


def local_day(day: date, *, end: bool = False) -> datetime:
    """The start of ``day`` in the reader's zone (of the next day, for the end of a range),
    as an aware time: a day a person types means their day, not UTC's."""
    start = day + timedelta(days=1) if end else day
    return datetime.combine(start, time(), tzinfo=zone())


def last_second(day: date) -> datetime:
    """The last second of ``day`` in the node's zone: "valid until 31 December" means until
    the end of that day in Morocco, not at 00:59 on 1 January."""
    return local_day(day, end=True) - timedelta(seconds=1)


STATUS = {
    "sent": N_("Sent"),
    "received": N_("Received"),
    "accepted": N_("Accepted"),
    "in_progress": N_("In progress"),
    "completed": N_("Completed"),
    "declined": N_("Declined"),
    "closed_unresolved": N_("Closed, unresolved"),
    "withdrawn": N_("Withdrawn"),
    "expired": N_("Expired"),
}
OPEN_STATUSES = ("sent", "received", "accepted", "in_progress")
URGENCY = {
    "emergency": N_("Emergency"),
    "priority": N_("Priority"),
    "routine": N_("Routine"),
}
LEGAL_BASIS = {
    "consent": N_("Consent of the person"),
    "vital_interest": N_("Vital interest (life or safety at risk)"),
    "legal_obligation": N_("Legal obligation"),
    "public_interest": N_("Task in the public interest"),
}
ACTION = {
    "accept": N_("Accept"),
    "decline": N_("Decline"),
    "start": N_("Start"),
    "complete": N_("Complete"),
    "close": N_("Close unresolved"),
    "withdraw": N_("Withdraw"),
    "revoke-consent": N_("Record that consent was withdrawn"),
}
CHANGE = {
    **STATUS,
    "consent_revoked": N_("Consent withdrawn"),
    "key_destroyed": N_("Copy of the personal data destroyed"),
    "refused": N_("Refused by the receiving node"),
}
CAPACITY = {
    "open": N_("Open"),
    "waitlist": N_("Waiting list"),
    "closed": N_("Closed"),
}
MEMBERSHIP = {
    "applicant": N_("Applicant"),
    "active": N_("Active member"),
    "suspended": N_("Suspended"),
    "left": N_("Left the network"),
}
SEX = {"female": N_("Female"), "male": N_("Male"), "any": N_("Any")}
# The values of the referral forms' choice fields (services/referrals/data/forms.json).
CHOICE = {
    "female": N_("Female"),
    "male": N_("Male"),
    "other": N_("Other"),
    "phone": N_("By phone"),
    "in_person": N_("In person"),
    "through_referrer": N_("Through the referring organisation"),
    "asylum_seeker": N_("Asylum seeker"),
    "refugee": N_("Refugee"),
    "undocumented": N_("Undocumented"),
    "regularised": N_("Regularised"),
    "unknown": N_("Unknown"),
}
DEADLINE = {"acknowledge": N_("Acknowledge by"), "answer": N_("Answer by")}
# The directory's reasons for ranking a suggestion (services/directory/matching.py codes).
MATCH_REASON = {
    "same_city": N_("Works in the person's city"),
    "same_region": N_("Works in the person's region"),
    "national": N_("Works everywhere in Morocco"),
    "language_match": N_("Speaks %(languages)s"),
    "no_common_language": N_("No language in common"),
    "languages_unknown": N_("Languages not stated"),
    "capacity_open": N_("Taking new cases"),
    "capacity_waitlist": N_("Waiting list"),
    "eligible_population": N_("Serves %(populations)s"),
    "check_age": N_("Check the age limits"),
    "check_sex": N_("Check: for one sex only"),
    "check_population": N_("Check: only for %(populations)s"),
    "response_time": N_("Answers quickly"),
}

# The API's field errors (pydantic's English words) put in the reader's language.
FIELD_REQUIRED = N_("Fill in this field.")
TOO_LONG = N_("At most %(count)s characters.")
TOO_SHORT = N_("At least %(count)s characters.")
NOT_A_DATE = N_("Enter a date (year-month-day).")
NOT_A_NUMBER = N_("Enter a whole number.")
NOT_A_CHOICE = N_("Choose one of the values offered.")
TOO_SMALL = N_("At least %(count)s.")
TOO_BIG = N_("At most %(count)s.")
NOT_ALLOWED_FIELD = N_("This field is not allowed for this category.")
BAD_FORMAT = N_("This value does not have the expected form.")
NOT_ACCEPTED = N_("This value is not accepted.")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^field required|missing|is required", re.I), FIELD_REQUIRED),
    (re.compile(r"at most (\d+) character", re.I), TOO_LONG),
    (re.compile(r"at least (\d+) character", re.I), TOO_SHORT),
    (re.compile(r"valid date|date", re.I), NOT_A_DATE),
    (re.compile(r"valid integer|valid number", re.I), NOT_A_NUMBER),
    (re.compile(r"greater than or equal to (\d+)", re.I), TOO_SMALL),
    (re.compile(r"less than or equal to (\d+)", re.I), TOO_BIG),
    (re.compile(r"extra inputs|not allowed|unknown field", re.I), NOT_ALLOWED_FIELD),
    (re.compile(r"input should be '|one of|valid enumeration|unknown code", re.I), NOT_A_CHOICE),
    (re.compile(r"match pattern", re.I), BAD_FORMAT),
)


@dataclass(frozen=True)
class FieldError:
    """What to say beside a field: the reader's words, and the API's own when they add more."""

    message: str
    technical: str | None = None


def field_error(lang: str, detail: str) -> FieldError:
    """The API's ``detail`` about one field, said in ``lang``.

    A message the pages do not know is named as refused in the reader's language, followed by
    the API's own words (in English), so nothing the API said is lost.
    """
    gettext = i18n.translations(lang).gettext
    for pattern, message in _PATTERNS:
        found = pattern.search(detail)
        if found is not None:
            count = found.group(1) if found.groups() else None
            text = gettext(message) % {"count": count} if count else gettext(message)
            return FieldError(text)
    return FieldError(gettext(NOT_ACCEPTED), detail)


def localised(labels: Mapping[str, Any] | None, lang: str, fallback: str = "") -> str:
    """The text of ``labels`` (``{"fr": ..., "ar": ..., "en": ...}``) in ``lang``, else French,
    else any; ``fallback`` (a code) when there is none."""
    if not isinstance(labels, Mapping):
        return fallback
    for code in (lang, i18n.DEFAULT, *i18n.SUPPORTED):
        text = labels.get(code)
        if isinstance(text, str) and text:
            return text
    return fallback


@dataclass(frozen=True)
class Said:
    """A text an organisation wrote, and the language it is in: a page in another language
    marks it (``lang``, ``dir``) so that screen readers voice it right and an Arabic text's
    full stop stays at its end on a French page (and the other way round)."""

    text: str
    lang: str
    dir: str

    def __bool__(self) -> bool:
        return bool(self.text)

    def __str__(self) -> str:
        return self.text


def said(labels: Mapping[str, Any] | None, lang: str) -> Said:
    """``localised``'s choice of text, with the language it is in."""
    if isinstance(labels, Mapping):
        for code in (lang, i18n.DEFAULT, *i18n.SUPPORTED):
            text = labels.get(code)
            if isinstance(text, str) and text:
                return Said(text, code, i18n.direction(code))
    return Said("", lang, i18n.direction(lang))


def word(table: Mapping[str, str], code: str | None, lang: str) -> str:
    """``code`` said with ``table``'s words in ``lang`` (the code itself if unknown)."""
    if code is None:
        return ""
    message = table.get(code)
    return i18n.translations(lang).gettext(message) if message else code.replace("_", " ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Clock:
    """The time left to a deadline, as the inbox shows it."""

    kind: str  # acknowledge | answer
    label: str  # "Answer by"
    due: str  # the moment, in the reader's words
    due_iso: str
    zone: str  # "Moroccan time": the zone ``due`` is in
    left: str  # "in 3 hours" / "2 hours ago"
    state: str  # ok | soon | overdue


SOON_SECONDS = 4 * 3600


def clock(summary: Mapping[str, Any], lang: str, now: datetime | None = None) -> Clock | None:
    """The deadline a referral is running against now, or None when it is settled.

    Until it is accepted or declined, the clock runs to ``acknowledge_by``; once accepted,
    to ``answer_by`` (the service started, or the referral closed).
    """
    status = summary.get("status")
    if status not in OPEN_STATUSES:
        return None
    if status == "in_progress":
        return None  # the answer was given: the service started
    kind = "acknowledge" if status in ("sent", "received") else "answer"
    due = parse_time(summary.get(f"{kind}_by"))
    if due is None:
        return None
    now = now or datetime.now(UTC)
    remaining = due - now
    seconds = remaining.total_seconds()
    state = "overdue" if seconds < 0 else "soon" if seconds < SOON_SECONDS else "ok"
    return Clock(
        kind=kind,
        label=word(DEADLINE, kind, lang),
        due=format_datetime(due, "short", tzinfo=zone(), locale=lang),
        due_iso=due.isoformat(),
        zone=zone_note(lang),
        left=format_timedelta(remaining, add_direction=True, locale=lang, threshold=1.5),
        state=state,
    )


def moment(value: Any, lang: str) -> str:
    """A time the API sent, in the reader's words and the node's zone."""
    parsed = parse_time(value)
    return (
        format_datetime(parsed, "short", tzinfo=zone(), locale=lang) if parsed is not None else ""
    )


def reason_text(
    reason: Mapping[str, Any], lang: str, name_of: Callable[[str, str], str] | None = None
) -> str:
    """One of the directory's reasons for a suggestion, in ``lang``; ``name_of(kind, code)``
    names languages and populations."""
    code = str(reason.get("code", ""))
    message = MATCH_REASON.get(code)
    if message is None:
        return code.replace("_", " ")

    def names(kind: str, codes: Any) -> str:
        items = [str(c) for c in codes] if isinstance(codes, list) else []
        shown = [name_of(kind, c) if name_of is not None else c for c in items]
        return format_list(shown, locale=lang) if shown else ""

    text = i18n.translations(lang).gettext(message)
    if "%(" in text:
        text = text % {
            "languages": names("language", reason.get("languages")),
            "populations": names("population", reason.get("populations")),
        }
    return text


# The notifications: what each kind is about, and the channels a person is told on.
NOTIFICATION_KIND = {
    "referral_received": N_("A referral arrives in the inbox"),
    "referral_outcome": N_("An answer to a referral we sent"),
    "referral_closed": N_("A referral in the inbox is withdrawn or expires"),
    "consent_revoked": N_("Consent withdrawn for a referral"),
    "data_erased": N_("The receiver erased a referral's data"),
    "deadline_reminder": N_("A deadline comes near"),
    "deadline_breach": N_("A deadline passed"),
    "referral_escalated": N_("A referral passed its deadline somewhere in the network"),
    "membership_changed": N_("The organisation's membership changed"),
    "keys_changed": N_("The organisation's public keys changed"),
    "webhook_disabled": N_("A webhook was disabled"),
    "inbox_message": N_("A message on a referral in the inbox"),
    "outbox_message": N_("A message on a referral we sent"),
    "inbox_file": N_("A document on a referral in the inbox"),
    "outbox_file": N_("A document on a referral we sent"),
    "login_locked": N_("Sign-in to an account is locked after too many wrong passwords"),
    "second_link_refused": N_("A second network link with the node's credentials is refused"),
}
CHANNEL = {
    "in_app": N_("In Relais"),
    "email": N_("E-mail"),
    "sms": N_("SMS"),
}
DELIVERY_CHANNEL = {**CHANNEL, "webhook": N_("Webhook")}
DELIVERY_KIND = {**NOTIFICATION_KIND, "digest": N_("Daily digest")}
DELIVERY_STATE = {
    "pending": N_("Waiting to be sent"),
    "held": N_("Held for the daily digest"),
    "sent": N_("Sent"),
    "failed": N_("Failed"),
    "digested": N_("Sent in a digest"),
    "cancelled": N_("Cancelled"),
    "gave_up": N_("Given up"),
}


def joined(items: Iterable[str], lang: str) -> str:
    """Several names as one phrase, the way ``lang`` lists them (CLDR through Babel): "a, b
    et c" in French, "a وb وc" in Arabic, never Latin commas in an Arabic sentence."""
    shown = [item for item in items if item]
    return format_list(shown, locale=lang) if shown else ""
