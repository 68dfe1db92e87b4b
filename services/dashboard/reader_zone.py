"""The zone a page's reader reads its times in: the one they chose in their preferences (kept
by the notifications service, beside their language and contacts), else the node's.

A dependency of every page, run before the page's own: it looks up who is reading (the same
lookup the page's guard makes, cached on the request) and sets ``labels.reading_in`` for this
request. The choice is remembered a minute per person, so a person's pages cost at most one
extra (in-process) call a minute; the preferences page refreshes it at once when the person
saves a new zone.
"""

from __future__ import annotations

import time

from fastapi import Request

from services.dashboard import labels
from services.dashboard.node_api import NodeApi
from shared.auth.guards import principal_of
from shared.auth.roles import Principal
from shared.errors import DomainError

PREFERENCES = "/api/v1/notifications/preferences"
KEPT_FOR = 60.0  # seconds; a zone changed through the API shows within a minute
_known: dict[str, tuple[float, str | None]] = {}


def remember(username: str, zone: str | None) -> None:
    _known[username] = (time.monotonic() + KEPT_FOR, zone)


async def chosen_zone(request: Request, principal: Principal) -> str | None:
    """The reader's zone, or None for the node's (also when the notifications do not answer)."""
    kept = _known.get(principal.subject)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    try:
        found = await NodeApi(request).get(PREFERENCES)
    except DomainError:
        # Notifications down, or not run on this node: the node's zone (named as such beside
        # every time) for this minute, rather than a page that fails for want of a preference.
        found = None
    zone = found.get("timezone") if isinstance(found, dict) else None
    zone = zone if isinstance(zone, str) else None
    remember(principal.subject, zone)
    return zone


async def reader_zone(request: Request) -> None:
    """Set this request's zone; a visitor not logged in (the login page) reads the node's."""
    labels.reading_in(None)
    try:
        principal = await principal_of(request)
    except DomainError:
        return  # the page's own guard says why, in its own words
    if principal.kind == "user":  # a member system has no preferences
        labels.reading_in(await chosen_zone(request, principal))
