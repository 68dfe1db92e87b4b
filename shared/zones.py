"""The time zones a person reads times in: the node's (``RELAIS_TIMEZONE``, ``Africa/Casablanca``
by default) unless they chose another in their preferences, and how a zone is named for them.

Conversions are done here, in Python, with the IANA database of ``zoneinfo``: the embedded
PostgreSQL's own zone data has Casablanca at UTC+0 all year, so SQL never converts a zone.
"""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import get_timezone_location

from shared import i18n
from shared.i18n import N_
from shared.settings import DEFAULT_TIMEZONE

MOROCCAN_TIME = N_("Moroccan time")
ZONE_TIME = N_("Time in %(zone)s")

# The zones a person of the network is likely to want, Morocco's first; any IANA name is
# accepted by the API, these are the ones the preferences page offers.
OFFERED = (
    "Africa/Casablanca",
    "Africa/Algiers",
    "Africa/Tunis",
    "Africa/Dakar",
    "Africa/Abidjan",
    "Africa/Bamako",
    "Africa/Lagos",
    "Africa/Cairo",
    "Atlantic/Canary",
    "Europe/Madrid",
    "Europe/Paris",
    "Europe/Brussels",
    "Europe/Rome",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "UTC",
)


# Files of the zone database that are no place's zone: the machine's own, a placeholder.
NOT_A_PLACE = frozenset({"localtime", "Factory", "posixrules"})


@cache
def _known() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_A_PLACE


def is_zone(name: str) -> bool:
    """Whether ``name`` is a zone of the IANA database (``Europe/Paris``): a name the database
    lists, not merely a file ``ZoneInfo`` can open (``right/UTC``, a path)."""
    return name in _known()


def zone_or(name: str | None, fallback: str) -> ZoneInfo:
    """The zone ``name`` if it is one, otherwise ``fallback`` (the node's, already checked)."""
    return ZoneInfo(name) if name and is_zone(name) else ZoneInfo(fallback)


def zone_name(zone: ZoneInfo, lang: str) -> str:
    """The zone as a reader names it beside a time: "heure du Maroc", "heure de Europe/Paris"
    (the IANA name: unambiguous, and what the preferences page shows)."""
    gettext = i18n.translations(lang).gettext
    if zone.key == DEFAULT_TIMEZONE:
        return gettext(MOROCCAN_TIME)
    return gettext(ZONE_TIME) % {"zone": zone.key}


def offered(current: str | None, lang: str) -> list[tuple[str, str]]:
    """The zones to choose from, as (IANA name, words), with ``current`` kept if elsewhere."""
    keys = list(OFFERED)
    if current and current not in keys and is_zone(current):
        keys.append(current)
    return [(key, _offered_label(key, lang)) for key in keys]


def _offered_label(key: str, lang: str) -> str:
    """How a zone reads in the preferences' list: its place in the reader's words and its name
    ("Maroc — Africa/Casablanca"; CLDR's words, Babel's)."""
    if key == DEFAULT_TIMEZONE:
        return f"{i18n.translations(lang).gettext(MOROCCAN_TIME)} — {key}"
    if key in ("UTC", "Etc/UTC"):
        return key
    return f"{get_timezone_location(key, locale=lang)} — {key}"
