"""The audit log, searched: the node's own log (its admin and auditor) and, at the hub, the
network log (coordinators and auditors); filters by time, organisation, actor, action, outcome
and object, a page at a time (the API's keyset cursor), and exports that the browser downloads
straight from the audit API (which records each export before sending a byte).

Nobody types an internal code: organisation, actor, action and outcome are pickers in the
reader's language (the action codes are ``shared.contracts.audit_actions``, the actors those
the log itself names), and the results show the same words, the code kept in a ``title``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from services.dashboard import labels
from services.dashboard.labels import FieldError
from services.dashboard.lookups import Lookups
from services.dashboard.node_api import ApiRefused, NodeApi
from services.dashboard.rendering import PageRoute, language_of, render, settings_of
from shared import i18n
from shared.auth import Principal, Role, require
from shared.contracts import audit_actions
from shared.contracts.audit import Outcome
from shared.errors import Forbidden, NotFound
from shared.i18n import N_

Gettext = Callable[[str], str]
router = APIRouter(route_class=PageRoute)
Reader = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.AUDITOR, Role.ADMIN))]
AUDIT = "/api/v1/audit"
PAGE = 50
FILTERS = ("from", "to", "org", "actor", "action", "outcome", "object")
CODES = ("org", "actor", "action", "outcome", "object")
Text = Annotated[str, Query(max_length=200)]
Log = Annotated[str, Query(pattern=r"^(own|network|)$")]
Cursor = Annotated[str, Query(pattern=r"^[0-9]{0,19}$")]
OWN_LOG = N_("This node's log")
NETWORK_LOG = N_("The network log")
LOG_NAMES = {"own": OWN_LOG, "network": NETWORK_LOG}
# The action picker's groups, by the kind of object an action is about.
ACTION_GROUPS = (
    (N_("Referrals"), ("referral",)),
    (
        N_("Directory and membership"),
        ("membership", "organisation", "credentials", "directory", "flood", "link"),
    ),
    (N_("Accounts and access"), ("session", "user", "token", "client", "access")),
    (
        N_("Audit and node operations"),
        ("audit", "checkpoint", "key", "node", "dead_letter", "outbox"),
    ),
)
ACTOR_GROUPS = (
    ("system", N_("Services")),
    ("user", N_("Accounts")),
    ("token", N_("Member systems (access tokens)")),
)
TOKEN_ACTOR = N_("Member system %(id)s")


def _logs(principal: Principal, is_hub: bool) -> list[str]:
    """The logs the visitor may search, the first one by default."""
    logs = []
    if is_hub and principal.has(Role.COORDINATOR, Role.AUDITOR):
        logs.append("network")
    if principal.has(Role.ADMIN, Role.AUDITOR):
        logs.append("own")
    return logs


def _day(value: str, *, end: bool) -> datetime:
    """The start of a day in the node's zone (the day the reader means), or the start of the
    next one for the end of a range; sent to the API with its offset."""
    return labels.local_day(date.fromisoformat(value), end=end)


def api_filters(typed: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The API's query for what the form says, and the fields it cannot read (name: message).

    Days are whole: "to" includes its day. Codes are sent as typed, trimmed; the API names
    what it refuses."""
    query: dict[str, str] = {}
    bad: dict[str, str] = {}
    for name in ("from", "to"):
        if typed.get(name):
            try:
                query[name] = _day(typed[name], end=name == "to").isoformat()
            except ValueError:
                bad[name] = labels.NOT_A_DATE
    for name in CODES:
        if typed.get(name):
            query[name] = typed[name]
    return query, bad


@router.get("/audit")
async def audit_search(
    request: Request,
    principal: Reader,
    log: Log = "",
    cursor: Cursor = "",
    from_: Annotated[str, Query(alias="from", max_length=40)] = "",
    to: Annotated[str, Query(max_length=40)] = "",
    org: Text = "",
    actor: Text = "",
    action: Text = "",
    outcome: Text = "",
    object_: Annotated[str, Query(alias="object", max_length=200)] = "",
) -> Response:
    settings = settings_of(request)
    logs = _logs(principal, settings.is_hub)
    if not logs:
        raise Forbidden("no audit log for this role on this node")
    log = log or logs[0]
    if log not in logs:
        raise Forbidden("this log is not for this role", field="log")
    lang = language_of(request)
    gettext = i18n.translations(lang).gettext
    typed = {
        "from": from_.strip(),
        "to": to.strip(),
        "org": org.strip(),
        "actor": actor.strip(),
        "action": action.strip(),
        "outcome": outcome.strip() if log == "own" else "",
        "object": object_.strip(),
    }
    query, bad = api_filters(typed)
    errors = {name: FieldError(gettext(message)) for name, message in bad.items()}
    api = NodeApi(request)
    path = f"{AUDIT}/network" if log == "network" else f"{AUDIT}/records"
    items: list[dict[str, Any]] = []
    next_cursor = None
    status_code = 200
    if not errors:
        try:
            found = await api.get(path, **query, order="desc", limit=PAGE, cursor=cursor)
            items, next_cursor = found.get("items", []), found.get("next_cursor")
        except ApiRefused as refused:
            status_code = refused.status
            for name, detail in refused.errors or [("form", refused.detail)]:
                field = name if name in FILTERS else "form"
                errors.setdefault(field, labels.field_error(lang, detail))
    else:
        status_code = 422
    names = await Lookups(api, lang).org_names()
    seen = await _actors(api) if log == "own" else []
    here = {"log": log, **{k: v for k, v in typed.items() if v}}
    return render(
        request,
        "audit.html",
        status_code=status_code,
        principal=principal,
        log=log,
        logs=[(code, gettext(LOG_NAMES[code])) for code in logs],
        typed=typed,
        errors=errors,
        rows=[_row(item, names, lang) for item in items],
        actions=_action_choices(log, gettext),
        actors=_actor_choices(seen, typed["actor"], gettext),
        outcomes=[(o.value, audit_actions.outcome_label(o.value, gettext)) for o in Outcome],
        zone=labels.zone_note(lang),
        next_page="/audit?" + urlencode({**here, "cursor": next_cursor}) if next_cursor else None,
        first_page=None if not cursor else "/audit?" + urlencode(here),
        exports=None
        if errors
        else [
            (fmt.upper(), f"{path}/export?" + urlencode({**query, "format": fmt}))
            for fmt in ("csv", "ndjson")
        ],
        organisations=sorted(names.items(), key=lambda pair: pair[1]),
    )


async def _actors(api: NodeApi) -> list[str]:
    """The actors the own log names (an older audit service has no list: none offered)."""
    try:
        found = await api.get(f"{AUDIT}/actors")
    except (NotFound, ApiRefused):
        return []
    return [actor for actor in found or [] if isinstance(actor, str)]


def _action_choices(log: str, gettext: Gettext) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group label, [(code, label)]) for the action picker, each group in label order."""
    codes = audit_actions.actions_of(log)
    groups = []
    for title, kinds in ACTION_GROUPS:
        members = [
            (code, audit_actions.action_label(code, gettext))
            for code in codes
            if code.split(".", 1)[0] in kinds
        ]
        if members:
            groups.append((gettext(title), sorted(members, key=lambda pair: pair[1])))
    return groups


def actor_label(actor: str, gettext: Gettext) -> str:
    """A service by its name, an account by its user name, a member system by its token."""
    kind, _, name = actor.partition(":")
    if actor in audit_actions.SYSTEM_ACTORS:
        return gettext(audit_actions.SYSTEM_ACTORS[actor])
    if kind == "token":
        return gettext(TOKEN_ACTOR) % {"id": name}
    return name or actor


def _actor_choices(
    seen: list[str], typed: str, gettext: Gettext
) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group label, [(code, label)]) for the actor picker: the log's own actors, the services
    always, and what the address asks for even if the log does not name it (kept, not lost)."""
    actors = set(seen) | set(audit_actions.SYSTEM_ACTORS) | ({typed} if typed else set())
    groups = []
    for kind, title in ACTOR_GROUPS:
        members = [
            (actor, actor_label(actor, gettext))
            for actor in actors
            if actor.partition(":")[0] == kind
        ]
        if members:
            groups.append((gettext(title), sorted(members, key=lambda pair: pair[1])))
    others = sorted(a for a in actors if a.partition(":")[0] not in dict(ACTOR_GROUPS))
    if others:
        groups.append(("", [(actor, actor) for actor in others]))
    return groups


def _row(item: dict[str, Any], names: dict[str, str], lang: str) -> dict[str, Any]:
    gettext = i18n.translations(lang).gettext
    return {
        **item,
        "action_label": audit_actions.action_label(str(item.get("action")), gettext),
        "outcome_label": audit_actions.outcome_label(str(item.get("outcome")), gettext),
        "actor_label": actor_label(str(item.get("actor")), gettext),
        "when": labels.moment(item.get("at"), lang),
        "zone": labels.zone_note(lang),
        "from_name": names.get(str(item.get("from_org")), item.get("from_org")),
        "to_name": names.get(str(item.get("to_org")), item.get("to_org")),
        "actor_org_name": names.get(str(item.get("actor_org")), item.get("actor_org")),
    }
