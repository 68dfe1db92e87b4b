"""A person's notifications: the feed, each item written from its facts in the page's language
(``feed``; kept live by the notifications API's event stream, see ``static/notifications.js``),
marking it read, and their preferences (contact, language, channels per kind, daily digest),
all through the notifications API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from services.dashboard import feed, labels, reader_zone
from services.dashboard.labels import FieldError
from services.dashboard.lookups import Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render
from shared import i18n, zones
from shared.auth import Principal, require
from shared.i18n import N_

router = APIRouter(route_class=PageRoute)
Anyone = Annotated[Principal, Depends(require())]
NOTIFICATIONS = "/api/v1/notifications"
FeedCursor = Annotated[str, Query(pattern=r"^([0-9a-fA-F-]{36})?$")]
PAGE = 30
# A choice of channels per kind, as one select: the organisation's default, or these.
CHOICES = ("in_app", "in_app+email", "in_app+sms", "in_app+email+sms")
DEFAULT_CHOICE = "default"
ORGANISATION_DECIDES = N_("As my organisation decides")
SAVED = N_("Your choices are saved.")
ALL_READ = N_("Everything is marked as read.")
NOT_AN_EMAIL = N_("Enter an e-mail address, like name@example.org.")
NOT_A_PHONE = N_("Enter the number in international form, like +212612345678.")
ACCOUNT_LANGUAGE = N_("The language of my account")
NODE_ZONE = N_("The node's zone (%(zone)s)")


async def _entries(
    request: Request, principal: Principal, found: dict[str, Any]
) -> list[feed.FeedEntry]:
    """The API's items (facts) in the page's words; the directory names the organisations."""
    api = NodeApi(request)
    lang = language_of(request)
    raw = [item for item in found.get("items", []) if isinstance(item, dict)]
    if not raw:
        return []
    lookups = Lookups(api, lang)
    org_names = await lookups.org_names()
    categories = dict(await lookups.categories())
    return [
        feed.entry(item, lang, reader_org=principal.org, org_names=org_names, categories=categories)
        for item in raw
    ]


@router.get("/notifications")
async def feed_page(
    request: Request, principal: Anyone, before: FeedCursor = "", done: int = 0
) -> Response:
    found = await NodeApi(request).get(f"{NOTIFICATIONS}/feed", limit=PAGE, before=before)
    items = await _entries(request, principal, found)
    return render(
        request,
        "notifications.html",
        principal=principal,
        unread=found.get("unread", 0),
        items=items,
        groups=feed.grouped(items),
        older=items[-1].id if len(items) == PAGE else None,
        first_page=not before,
        notice=ALL_READ if done else None,
    )


@router.get("/notifications/items")
async def feed_items(request: Request, principal: Anyone, after: FeedCursor = "") -> Response:
    """The items newer than ``after``, newest first, with the page's own partial: what the
    feed's live updates (``static/notifications.js``) put at the top of the list."""
    if after:
        found = await NodeApi(request).get(f"{NOTIFICATIONS}/feed", limit=PAGE, after=after)
        found["items"] = list(reversed(found.get("items", [])))
    else:
        found = await NodeApi(request).get(f"{NOTIFICATIONS}/feed", limit=PAGE)
    items = await _entries(request, principal, found)
    return render(
        request, "notifications_items.html", principal=principal, groups=feed.grouped(items)
    )


@router.post("/notifications/read")
async def mark_all_read(request: Request, principal: Anyone) -> Response:
    await NodeApi(request).post(f"{NOTIFICATIONS}/feed/read", json={})
    return RedirectResponse("/notifications?done=1", status_code=303)


@router.get("/notifications/preferences")
async def preferences_page(request: Request, principal: Anyone, saved: int = 0) -> Response:
    chosen = await NodeApi(request).get(f"{NOTIFICATIONS}/preferences")
    typed = {
        "email": chosen.get("email") or "",
        "phone": chosen.get("phone") or "",
        "language": chosen.get("language") or "",
        "digest": bool(chosen.get("digest")),
        "timezone": chosen.get("timezone") or "",
        "channels": {
            kind: "+".join(sorted(set(channels) | {"in_app"}, key=_channel_order))
            for kind, channels in (chosen.get("channels") or {}).items()
        },
    }
    return _preferences(
        request, principal, typed, chosen.get("available") or [], notice=SAVED if saved else None
    )


def _channel_order(channel: str) -> int:
    return list(labels.CHANNEL).index(channel) if channel in labels.CHANNEL else 99


def _preferences(
    request: Request,
    principal: Principal,
    typed: dict[str, Any],
    available: list[str],
    *,
    errors: dict[str, FieldError] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    lang = language_of(request)
    gettext = i18n.translations(lang).gettext
    offered = set(available) | {"in_app"}
    choices = [(DEFAULT_CHOICE, gettext(ORGANISATION_DECIDES))]
    for choice in CHOICES:
        channels = choice.split("+")
        if set(channels) <= offered:
            words = [labels.word(labels.CHANNEL, c, lang) for c in channels]
            choices.append((choice, " + ".join(words)))
    return render(
        request,
        "preferences.html",
        status_code=status_code,
        principal=principal,
        typed=typed,
        errors=errors or {},
        notice=notice,
        kinds=[
            (k, labels.word(labels.NOTIFICATION_KIND, k, lang)) for k in labels.NOTIFICATION_KIND
        ],
        choices=choices,
        languages_offered=[("", gettext(ACCOUNT_LANGUAGE))]
        + [(c, i18n.language_name(c)) for c in i18n.SUPPORTED],
        zones_offered=_zones_offered(typed.get("timezone") or None, lang),
        sms_offered="sms" in offered,
    )


def _zones_offered(chosen: str | None, lang: str) -> list[tuple[str, str]]:
    """The node's zone first, as "no choice" (it follows the node's setting), then the others;
    the node's own zone again only if the person chose it by name (through the API)."""
    node = labels.node_zone()
    others = [z for z in zones.offered(chosen, lang) if z[0] != node.key or chosen == node.key]
    return [
        ("", i18n.translations(lang).gettext(NODE_ZONE) % {"zone": zones.zone_name(node, lang)}),
        *others,
    ]


@router.post("/notifications/preferences")
async def save_preferences(request: Request, principal: Anyone) -> Response:
    """Save the form; on refusal, the form again with each error beside its field."""
    form = await request.form()

    def text(name: str, longest: int) -> str:
        value = form.get(name)
        return value.strip()[:longest] if isinstance(value, str) else ""

    channels: dict[str, str] = {}
    for kind in labels.NOTIFICATION_KIND:
        choice = text(f"channels.{kind}", 40)
        if choice in CHOICES:
            channels[kind] = choice
    typed: dict[str, Any] = {
        "email": text("email", 300),
        "phone": text("phone", 40).replace(" ", ""),
        "language": text("language", 5),
        "digest": form.get("digest") == "on",
        "timezone": text("timezone", 64),
        "channels": channels,
    }
    body = {
        "email": typed["email"] or None,
        "phone": typed["phone"] or None,
        "language": typed["language"] or None,
        "digest": typed["digest"],
        "channels": {kind: choice.split("+") for kind, choice in channels.items()},
        "timezone": typed["timezone"] or None,
    }
    api = NodeApi(request)
    try:
        await api.put(f"{NOTIFICATIONS}/preferences", body)
    except ApiRefused as refused:
        lang = language_of(request)
        errors = _field_errors(refused, lang)
        available = (await api.get(f"{NOTIFICATIONS}/preferences")).get("available") or []
        return _preferences(
            request, principal, typed, available, errors=errors, status_code=refused.status
        )
    reader_zone.remember(principal.subject, typed["timezone"] or None)
    return RedirectResponse("/notifications/preferences?saved=1", status_code=303)


def _field_errors(refused: ApiRefused, lang: str) -> dict[str, FieldError]:
    gettext = i18n.translations(lang).gettext
    own_words = {"email": NOT_AN_EMAIL, "phone": NOT_A_PHONE, "timezone": labels.NOT_A_CHOICE}
    errors: dict[str, FieldError] = {}
    for name, detail in refused.errors or [("form", refused.detail)]:
        field = name.split(".")[0]
        if field == "channels":
            kind = name.split(".")[1] if "." in name else ""
            field = f"channels.{kind}" if kind in labels.NOTIFICATION_KIND else "form"
        elif field not in ("email", "phone", "language", "digest", "timezone"):
            field = "form"
        if field in own_words:
            errors[field] = FieldError(gettext(own_words[field]))
        else:
            errors.setdefault(field, labels.field_error(lang, detail))
    return errors
