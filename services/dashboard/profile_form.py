"""The organisation's own record as a form: what it may set (names and descriptions in fr, ar
and en, where it works, website, focal points, each service's languages, places, hours, cost,
eligibility), read from the form into the record the API signs and sends to the hub, and the
API's or the hub's words about a field put back beside that field in the reader's language.

What the network's coordinators set (membership, kind, keys, node address) and the capacity
(its own one-click switch) are carried over from the record as the directory holds it, so
that the form can never ask for a change the hub refuses for being theirs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from services.dashboard import labels
from services.dashboard.labels import FieldError
from shared import i18n
from shared.i18n import N_

LANGS = ("fr", "ar", "en")
COSTS = ("free", "contribution", "fee")
SEXES = ("any", "female", "male")
# The limits of shared/contracts/directory.py, checked here so that a mistake is said beside
# its field before anything is signed.
NAME_MAX, DESCRIPTION_MAX, HOURS_MAX, WEBSITE_MAX = 300, 2000, 300, 300
PERSON_MAX, ROLE_MAX, EMAIL_MAX, PHONE_MAX = 120, 120, 200, 40
MAX_FOCAL_POINTS = 20
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ().-]{6,40}$")
# A website is a link on every node's pages: only http(s), never ``javascript:``.
WEBSITE = re.compile(r"^https?://[^\s<>\"']+$", re.I)
SERVICE_ID = re.compile(r"^[a-z][a-z0-9_]{1,40}$")

NAME_REQUIRED = N_("Give the organisation's name in French at least.")
NOT_AN_EMAIL = N_("Enter an e-mail address (name@example.org).")
NOT_A_PHONE = N_("Enter a phone number (digits, spaces, + ( ) . -).")
NOT_A_WEBSITE = N_("Enter a web address starting with https://.")
PERSON_NAME_REQUIRED = N_("Give this focal point's name, or empty the whole row.")
AGES_CROSSED = N_("The minimum age is above the maximum age.")
CHOOSE_CITY = N_("Choose the city where the organisation is based.")

# The hub's or the API's reasons (English, from services/directory) said in the reader's words.
STALE = N_(
    "The record changed since this form was opened (another change reached the hub first). "
    "Look at the record as it is now and make your change again."
)
COORDINATED = N_("Only the network's coordinators change this part of the record.")
NOT_ACTIVE = N_("Only an active member may change its record; ask the secretariat.")
UNKNOWN_CODE = N_("This value is not in the network's reference lists.")
SAME_SERVICE = N_("Two services have the same identifier.")
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"is at version \d+; send version", re.I), STALE),
    (re.compile(r"set by the network's coordinators", re.I), COORDINATED),
    (re.compile(r"organisation cannot change its record", re.I), NOT_ACTIVE),
    (re.compile(r"^unknown \w+", re.I), UNKNOWN_CODE),
    (re.compile(r"same service_id", re.I), SAME_SERVICE),
    (re.compile(r"minimum age is above the maximum", re.I), AGES_CROSSED),
)

# The part of the record a field belongs to, to name it when the hub refuses a change.
FIELD_LABELS = {
    "name": N_("Name"),
    "city": N_("Based in"),
    "website": N_("Website"),
    "cities": N_("Cities where it works"),
    "regions": N_("Regions where it works"),
    "focal_points": N_("Focal points"),
    "services": N_("Services"),
    "status": N_("Membership"),
    "kind": N_("Kind of organisation"),
    "keys": N_("Keys"),
    "node_url": N_("Node address"),
}


@dataclass
class Parsed:
    """The record the form asks for, the fields it got wrong, and where each item of the
    record's lists came from in the form (``services.2`` of the record is ``services.3`` of
    the form once a service is removed), to put the API's errors beside the right field."""

    record: dict[str, Any]
    errors: dict[str, FieldError] = field(default_factory=dict)
    service_rows: list[int] = field(default_factory=list)
    person_rows: list[int] = field(default_factory=list)


def _text(form: Typed, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _codes(form: Typed, name: str, known: set[str] | None) -> tuple[list[str], bool]:
    """The codes chosen for ``name``, in order, once each; and whether every one is known."""
    chosen = [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]
    unique = list(dict.fromkeys(chosen))
    return unique, known is None or all(code in known for code in unique)


@dataclass(frozen=True)
class Choices:
    """The codes the reference data offers, to refuse at once a value no list offered."""

    cities: set[str] | None = None
    regions: set[str] | None = None
    languages: set[str] | None = None
    categories: set[str] | None = None
    populations: set[str] | None = None


def rows(form: Typed, prefix: str) -> list[int]:
    """The row numbers the form holds for ``prefix`` (``services.0.category`` → 0), sorted."""
    found = set()
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d{{1,3}})\.")
    for key in form.values:
        match = pattern.match(key)
        if match:
            found.add(int(match.group(1)))
    return sorted(found)


def parse(form: Typed, current: Mapping[str, Any], lang: str, choices: Choices) -> Parsed:
    """The next version of ``current`` as the form sets it, and the form's mistakes in ``lang``.

    ``current`` is the record as the directory holds it (the API's JSON); the version the form
    was opened on comes from the form itself, so a record changed meanwhile is refused as stale
    rather than silently overwritten.
    """
    gettext = i18n.translations(lang).gettext
    errors: dict[str, FieldError] = {}

    def say(name: str, message: str, **values: Any) -> None:
        errors.setdefault(
            name, FieldError(gettext(message) % values if values else gettext(message))
        )

    def limited(name: str, limit: int) -> str:
        value = _text(form, name)
        if len(value) > limit:
            say(name, labels.TOO_LONG, count=limit)
        return value

    def codes(name: str, known: set[str] | None, limit: int) -> list[str]:
        value, ok = _codes(form, name, known)
        if not ok:
            say(name, labels.NOT_A_CHOICE)
        if len(value) > limit:
            say(name, labels.TOO_BIG, count=limit)
        return value

    record = dict(current)
    try:
        base = int(_text(form, "version"))
    except ValueError:
        base = int(current.get("version") or 0)
    record["version"] = base + 1

    record["name"] = {code: limited(f"name.{code}", NAME_MAX) for code in LANGS}
    if not record["name"]["fr"]:
        say("name.fr", NAME_REQUIRED)
    city = _text(form, "city")
    if not city:
        say("city", CHOOSE_CITY)
    elif choices.cities is not None and city not in choices.cities:
        say("city", labels.NOT_A_CHOICE)
    record["city"] = city
    website = limited("website", WEBSITE_MAX)
    if website and not WEBSITE.match(website):
        say("website", NOT_A_WEBSITE)
    record["website"] = website
    record["cities"] = codes("cities", choices.cities, 50)
    record["regions"] = codes("regions", choices.regions, 12)

    people: list[dict[str, str]] = []
    person_rows: list[int] = []
    for row in rows(form, "focal_points"):
        at = f"focal_points.{row}"
        person = {
            "name": limited(f"{at}.name", PERSON_MAX),
            "role": limited(f"{at}.role", ROLE_MAX),
            "email": limited(f"{at}.email", EMAIL_MAX),
            "phone": limited(f"{at}.phone", PHONE_MAX),
        }
        if not any(person.values()):
            continue  # an empty row: no one, or someone taken off the list
        if not person["name"]:
            say(f"{at}.name", PERSON_NAME_REQUIRED)
        if person["email"] and not EMAIL.match(person["email"]):
            say(f"{at}.email", NOT_AN_EMAIL)
        if person["phone"] and not PHONE.match(person["phone"]):
            say(f"{at}.phone", NOT_A_PHONE)
        people.append(person)
        person_rows.append(row)
    if len(people) > MAX_FOCAL_POINTS:
        say("focal_points", labels.TOO_BIG, count=MAX_FOCAL_POINTS)
    record["focal_points"] = people

    held = {s.get("service_id"): s for s in current.get("services") or []}
    services: list[dict[str, Any]] = []
    service_rows: list[int] = []
    for row in rows(form, "services"):
        at = f"services.{row}"
        service_id = _text(form, f"{at}.service_id")
        category = _text(form, f"{at}.category")
        if form.get(f"{at}.remove"):
            continue
        previous = held.get(service_id)
        if previous is None:
            if not category:
                continue  # the blank row offered for a new service, left blank
            service_id = _new_id(category, {*held, *(s["service_id"] for s in services)})
            previous = {"service_id": service_id}
        if not category:
            say(f"{at}.category", labels.FIELD_REQUIRED)
        elif choices.categories is not None and category not in choices.categories:
            say(f"{at}.category", labels.NOT_A_CHOICE)
        offer = dict(previous)  # capacity and its moment are kept: the switch sets them
        offer["category"] = category
        offer["description"] = {
            code: limited(f"{at}.description.{code}", DESCRIPTION_MAX) for code in LANGS
        }
        offer["languages"] = codes(f"{at}.languages", choices.languages, 30)
        offer["cities"] = codes(f"{at}.cities", choices.cities, 50)
        offer["regions"] = codes(f"{at}.regions", choices.regions, 12)
        offer["national"] = bool(form.get(f"{at}.national"))
        offer["hours"] = limited(f"{at}.hours", HOURS_MAX)
        cost = _text(form, f"{at}.cost") or "free"
        if cost not in COSTS:
            say(f"{at}.cost", labels.NOT_A_CHOICE)
        offer["cost"] = cost
        offer["takes_referrals"] = bool(form.get(f"{at}.takes_referrals"))
        offer["eligibility"] = _eligibility(form, f"{at}.eligibility", choices, say, codes)
        services.append(offer)
        service_rows.append(row)
    record["services"] = services
    return Parsed(record, errors, service_rows, person_rows)


def _eligibility(form: Typed, at: str, choices: Choices, say: Any, codes: Any) -> dict[str, Any]:
    ages: dict[str, int | None] = {}
    for bound in ("min_age", "max_age"):
        typed = _text(form, f"{at}.{bound}")
        if not typed:
            ages[bound] = None
        elif not typed.isdigit():
            say(f"{at}.{bound}", labels.NOT_A_NUMBER)
            ages[bound] = None
        elif int(typed) > 120:
            say(f"{at}.{bound}", labels.TOO_BIG, count=120)
            ages[bound] = None
        else:
            ages[bound] = int(typed)
    low, high = ages["min_age"], ages["max_age"]
    if low is not None and high is not None and low > high:
        say(f"{at}.min_age", AGES_CROSSED)
    sex = _text(form, f"{at}.sex") or "any"
    if sex not in SEXES:
        say(f"{at}.sex", labels.NOT_A_CHOICE)
    return {
        **ages,
        "sex": sex,
        "populations": codes(f"{at}.populations", choices.populations, 20),
    }


def _new_id(category: str, taken: set[Any]) -> str:
    """A new service's identifier: its category's code, numbered if the code is taken."""
    base = category if SERVICE_ID.match(category) else "service"
    candidate, n = base[:38], 2
    while candidate in taken:
        candidate, n = f"{base[:36]}_{n}", n + 1
    return candidate


_NOT_ON_THE_FORM = {"org_id", "status", "status_reason", "kind", "keys", "node_url"}


def form_field(api_field: str, parsed: Parsed) -> str:
    """The form's name for a field the API names in the record (``services.1.languages.0`` →
    ``services.3.languages`` when the record's second service is the form's fourth row)."""
    parts = api_field.split(".")
    if parts and parts[0] == "body":
        parts = parts[1:]
    if len(parts) >= 2 and parts[1].isdigit() and parts[0] in ("services", "focal_points"):
        where = parsed.service_rows if parts[0] == "services" else parsed.person_rows
        index = int(parts[1])
        if index < len(where):
            parts[1] = str(where[index])
    if not parts or parts[0] in _NOT_ON_THE_FORM:
        return "form"  # said above the form: the person cannot change it here
    # A list of codes is one field on the form: its n-th code is that field.
    while parts and parts[-1].isdigit():
        parts.pop()
    return ".".join(parts) or "form"


def api_errors(
    errors: Sequence[tuple[str, str]], detail: str, parsed: Parsed, lang: str
) -> dict[str, FieldError]:
    """The API's refusal of the form, each error beside its field in ``lang``."""
    found: dict[str, FieldError] = {}
    for api_field, said in errors or [("form", detail)]:
        found.setdefault(form_field(api_field, parsed), reason(said, lang))
    return found


def reason(detail: str, lang: str) -> FieldError:
    """The hub's or the API's reason, in the reader's words (the API's own kept after them
    when the pages have no words of their own for it)."""
    gettext = i18n.translations(lang).gettext
    for pattern, message in _REASONS:
        if pattern.search(detail):
            return FieldError(gettext(message))
    return labels.field_error(lang, detail)


def refusal(detail: str, api_field: str | None, lang: str) -> tuple[str, FieldError]:
    """What the hub refused, in words: the part of the record (named in ``lang``) and why."""
    gettext = i18n.translations(lang).gettext
    part = (api_field or "").split(".")[0]
    label = FIELD_LABELS.get(part)
    return (gettext(label) if label else ""), reason(detail, lang)


Values = dict[str, list[str]]


def values_of(record: Mapping[str, Any]) -> Values:
    """The record as the form's fields hold it (every field a list of strings, as a form
    sends them), with one blank row for a new focal point and one for a new service."""
    values: Values = {"version": [str(record.get("version") or 0)]}
    for code in LANGS:
        values[f"name.{code}"] = [str((record.get("name") or {}).get(code) or "")]
    values["city"] = [str(record.get("city") or "")]
    values["website"] = [str(record.get("website") or "")]
    values["cities"] = [str(c) for c in record.get("cities") or []]
    values["regions"] = [str(r) for r in record.get("regions") or []]
    people = list(record.get("focal_points") or [])
    for row, person in enumerate([*people, {}]):
        for part in ("name", "role", "email", "phone"):
            values[f"focal_points.{row}.{part}"] = [str(person.get(part) or "")]
    services = list(record.get("services") or [])
    for row, offer in enumerate([*services, {}]):
        at = f"services.{row}"
        values[f"{at}.service_id"] = [str(offer.get("service_id") or "")]
        values[f"{at}.category"] = [str(offer.get("category") or "")]
        for code in LANGS:
            values[f"{at}.description.{code}"] = [
                str((offer.get("description") or {}).get(code) or "")
            ]
        for many in ("languages", "cities", "regions"):
            values[f"{at}.{many}"] = [str(c) for c in offer.get(many) or []]
        values[f"{at}.national"] = ["on"] if offer.get("national") else []
        values[f"{at}.hours"] = [str(offer.get("hours") or "")]
        values[f"{at}.cost"] = [str(offer.get("cost") or "free")]
        values[f"{at}.takes_referrals"] = ["on"] if offer.get("takes_referrals", True) else []
        eligibility = offer.get("eligibility") or {}
        for bound in ("min_age", "max_age"):
            age = eligibility.get(bound)
            values[f"{at}.eligibility.{bound}"] = ["" if age is None else str(age)]
        values[f"{at}.eligibility.sex"] = [str(eligibility.get("sex") or "any")]
        values[f"{at}.eligibility.populations"] = [
            str(p) for p in eligibility.get("populations") or []
        ]
    return values


def values_typed(form: FormData) -> Values:
    """What the person typed, to show it again beside the errors."""
    return {key: [str(v) for v in form.getlist(key)] for key in form}


class Typed:
    """A ``Values`` as a form (for ``parse``) and as the template reads it."""

    def __init__(self, values: Values) -> None:
        self.values = values

    def get(self, key: str, default: Any = None) -> Any:
        found = self.values.get(key)
        return found[0] if found else default

    def getlist(self, key: str) -> list[Any]:
        return list(self.values.get(key, []))

    def one(self, key: str) -> str:
        return str(self.get(key, ""))

    def has(self, key: str, code: str) -> bool:
        return code in self.values.get(key, [])
