"""Directory rules: an organisation record changes one version at a time, membership moves
only along its lifecycle, search compares folded text, and a link probe measures the round
trip between two nodes."""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.directory import reference
from shared import crypto
from shared.contracts.directory import (
    Capacity,
    KeyUse,
    MembershipStatus,
    OrganisationPublished,
    PublicKey,
    ServiceOffer,
)
from shared.errors import Conflict, Forbidden, Invalid, InvalidTransition, NotFound

# Arabic letters written in several ways that a search should treat as one: alef with hamza
# above, below, madda and wasla become alef; teh marbuta becomes heh; alef maksura, yeh.
_ARABIC_VARIANTS = str.maketrans(
    {
        "\u0623": "\u0627",
        "\u0625": "\u0627",
        "\u0622": "\u0627",
        "\u0671": "\u0627",
        "\u0629": "\u0647",
        "\u0649": "\u064a",
    }
)


def fold(text: str) -> str:
    """Text as search compares it: lower case, no accents, no Arabic vowel marks or variants."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c) and c != "\u0640")
    return " ".join(bare.translate(_ARABIC_VARIANTS).split())


def search_text(record: OrganisationPublished, offer: ServiceOffer) -> str:
    """What free-text search looks in for one service: names and descriptions, all languages."""
    parts = [*record.name.model_dump().values(), *offer.description.model_dump().values()]
    return fold(" ".join(part for part in parts if part))


def checked(record: OrganisationPublished) -> OrganisationPublished:
    """The record with its codes checked against the reference data and languages normalised;
    ``Invalid`` names the first unknown code's field (``services.1.languages.0``)."""
    reference.check_city(record.city, "city")
    for i, city in enumerate(record.cities):
        reference.check_city(city, f"cities.{i}")
    for i, region in enumerate(record.regions):
        reference.check_region(region, f"regions.{i}")
    services = [_checked_offer(offer, f"services.{n}") for n, offer in enumerate(record.services)]
    ids = [offer.service_id for offer in services]
    if len(set(ids)) != len(ids):
        raise Invalid("two services have the same service_id", field="services")
    return record.model_copy(update={"services": services})


def _checked_offer(offer: ServiceOffer, at: str) -> ServiceOffer:
    reference.check_category(offer.category, f"{at}.category")
    for i, city in enumerate(offer.cities):
        reference.check_city(city, f"{at}.cities.{i}")
    for i, region in enumerate(offer.regions):
        reference.check_region(region, f"{at}.regions.{i}")
    for i, population in enumerate(offer.eligibility.populations):
        reference.check_population(population, f"{at}.eligibility.populations.{i}")
    low, high = offer.eligibility.min_age, offer.eligibility.max_age
    if low is not None and high is not None and low > high:
        raise Invalid("the minimum age is above the maximum age", field=f"{at}.eligibility")
    languages = [
        reference.check_language(code, f"{at}.languages.{i}")
        for i, code in enumerate(offer.languages)
    ]
    return offer.model_copy(update={"languages": list(dict.fromkeys(languages))})


def next_record(
    current: OrganisationPublished | None, proposed: OrganisationPublished
) -> OrganisationPublished:
    """The hub's new record: its version must follow the current one exactly."""
    expected = 1 if current is None else current.version + 1
    if proposed.version != expected:
        raise Conflict(
            f"organisation {proposed.org_id} is at version {expected - 1}; "
            f"send version {expected}, not {proposed.version}",
            field="version",
        )
    return checked(proposed)


class Membership(StrEnum):
    """What a coordinator does to an organisation's membership."""

    ADMIT = "admit"
    REJECT = "reject"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    LEAVE = "leave"


# applicant → active → suspended → left; a rejected application ends as left.
_LIFECYCLE: dict[Membership, tuple[frozenset[MembershipStatus], MembershipStatus]] = {
    Membership.ADMIT: (frozenset({MembershipStatus.APPLICANT}), MembershipStatus.ACTIVE),
    Membership.REJECT: (frozenset({MembershipStatus.APPLICANT}), MembershipStatus.LEFT),
    Membership.SUSPEND: (frozenset({MembershipStatus.ACTIVE}), MembershipStatus.SUSPENDED),
    Membership.REINSTATE: (frozenset({MembershipStatus.SUSPENDED}), MembershipStatus.ACTIVE),
    Membership.LEAVE: (
        frozenset({MembershipStatus.ACTIVE, MembershipStatus.SUSPENDED}),
        MembershipStatus.LEFT,
    ),
}


# What would put an organisation out of the network, which the hub's own cannot be.
_EXCLUDING = frozenset({Membership.REJECT, Membership.SUSPEND, Membership.LEAVE})


def change_membership(
    current: OrganisationPublished,
    action: Membership,
    reason: str | None,
    *,
    secretariat: str = "",
) -> OrganisationPublished:
    """The next version of ``current`` after ``action``; a reason is required to say no.
    ``secretariat`` is the hub's own organisation: it runs the network and cannot be put out
    of it (a suspended hub would refuse its own coordinators)."""
    if current.org_id == secretariat and action in _EXCLUDING:
        raise Conflict(
            f"the secretariat's organisation runs the hub: it cannot {action.value} itself",
            field="org_id",
        )
    allowed_from, to = _LIFECYCLE[action]
    if current.status not in allowed_from:
        raise InvalidTransition(
            f"cannot {action.value} an organisation that is {current.status.value}",
            field="status",
        )
    if action in (Membership.REJECT, Membership.SUSPEND) and not (reason or "").strip():
        raise Invalid(f"say why you {action.value} this organisation", field="reason")
    return current.model_copy(
        update={"status": to, "version": current.version + 1, "status_reason": reason or ""}
    )


def coordinator_edit(
    current: OrganisationPublished | None, proposed: OrganisationPublished
) -> OrganisationPublished:
    """A record the hub's coordinators write: a newcomer starts as an applicant, and an
    existing record keeps its membership status, which moves only along the lifecycle."""
    if current is None and proposed.status is not MembershipStatus.APPLICANT:
        raise InvalidTransition(
            "a new organisation starts as an applicant; then admit it", field="status"
        )
    if current is not None and (proposed.status, proposed.status_reason) != (
        current.status,
        current.status_reason,
    ):
        raise InvalidTransition(
            "membership changes through …/membership (admit, suspend, …)", field="status"
        )
    return next_record(current, proposed)


# What only the hub's coordinators change: an organisation edits the rest of its record (and
# rotates its keys, see ``check_rotation``).
_COORDINATED = ("status", "status_reason", "kind", "node_url")


def own_change(
    current: OrganisationPublished, proposed: OrganisationPublished
) -> OrganisationPublished:
    """An organisation's edit of its own record: the next version, codes checked, its keys
    only rotated, and nothing changed that belongs to the network's coordination
    (membership, kind, node)."""
    if current.status is not MembershipStatus.ACTIVE:
        raise Forbidden(f"a {current.status.value} organisation cannot change its record")
    for name in _COORDINATED:
        if getattr(proposed, name) != getattr(current, name):
            raise Forbidden(f"{name} is set by the network's coordinators", field=name)
    if proposed.keys != current.keys:
        check_rotation(current.keys, proposed.keys)
    return next_record(current, proposed)


def check_rotation(current: list[PublicKey], proposed: list[PublicKey]) -> None:
    """``Forbidden`` unless ``proposed`` is a rotation of ``current``: every key kept, each
    unchanged but for an end of validity set or brought forward (a key never comes back),
    and at most one new key per use, named by its own id. Old keys stay in the record so
    that what they sealed and signed can still be checked."""
    held = {k.key_id: k for k in current}
    kept = {k.key_id: k for k in proposed if k.key_id in held}
    if len(kept) != len(held):
        raise Forbidden("a key is never removed from the record, only ended", field="keys")
    for name, key in kept.items():
        old = held[name]
        if (key.use, key.public_key, key.valid_from) != (old.use, old.public_key, old.valid_from):
            raise Forbidden(f"key {name} cannot be changed, only ended", field="keys")
        if old.valid_until is not None and (
            key.valid_until is None or key.valid_until > old.valid_until
        ):
            raise Forbidden(f"key {name} has ended; it cannot be extended", field="keys")
    new = [k for k in proposed if k.key_id not in held]
    if len({k.use for k in new}) != len(new) or len(proposed) != len(kept) + len(new):
        raise Forbidden("a rotation adds at most one key of each use", field="keys")
    for key in new:
        if crypto.key_id(base64.b64decode(key.public_key)) != key.key_id:
            raise Forbidden("a key id does not match its key", field="keys")


def with_capacity(
    current: OrganisationPublished, service_id: str, capacity: Capacity, now: datetime
) -> OrganisationPublished:
    """The next version of a record with one service's capacity set (the one-click change)."""
    if service_id not in {offer.service_id for offer in current.services}:
        raise NotFound(f"{current.org_id} has no service {service_id}", field="service_id")
    services = [
        offer.model_copy(update={"capacity": capacity, "capacity_set_at": now})
        if offer.service_id == service_id
        else offer
        for offer in current.services
    ]
    return current.model_copy(update={"services": services, "version": current.version + 1})


def signing_key(record: OrganisationPublished, key_id: str, now: datetime) -> PublicKey:
    """The organisation's Ed25519 key named ``key_id``, if it is valid ``now``."""
    for key in record.keys:
        if key.key_id == key_id and key.use is KeyUse.SIGNING:
            if key.valid_from <= now and (key.valid_until is None or now < key.valid_until):
                return key
            raise Forbidden(f"key {key_id} of {record.org_id} is not valid now")
    raise Forbidden(f"{record.org_id} has no signing key {key_id}")


def should_apply(current_version: int | None, incoming: OrganisationPublished) -> bool:
    """A replica applies a broadcast only if it is newer than what it holds."""
    return current_version is None or incoming.version > current_version


@dataclass(frozen=True)
class ProbeResult:
    probe_id: str
    round_trip_ms: float


def round_trip(probe_id: str, probed_at: datetime, answer_received: datetime) -> ProbeResult:
    if answer_received < probed_at:
        raise Invalid("the answer predates the probe", field="probed_at")
    return ProbeResult(probe_id, (answer_received - probed_at).total_seconds() * 1000)
