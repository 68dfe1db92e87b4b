"""Events the directory publishes: the member roster and the links between nodes.

An organisation's record follows Open Referral HSDS 3.0 in spirit (organization, service,
location, service area, language, contact) with what a referral network adds: membership
status, capacity, focal points and public keys. Codes (categories, regions, cities, languages,
populations) are checked against the directory's reference data where records are written.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from shared.events import Payload, Scope, registry

ORG_ID = r"^[a-z][a-z0-9_]{1,30}$"
# Core NATS, inside one node (``Bus.notice``): the directory's record of ``{"org_id"}`` changed
# here, so whoever keeps a copy (the referrals' roster) reads it again. Outside ``relais.local``
# (no stream keeps it) and ``relais.cmd`` (a member system cannot send it); a leaf's
# permissions let nothing of the kind cross to the hub or back.
ORGANISATION_CHANGED_NOTICE = "relais.notice.directory.organisation"


class MembershipStatus(StrEnum):
    APPLICANT = "applicant"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LEFT = "left"


class OrganisationKind(StrEnum):
    NGO = "ngo"
    MIGRANT_LED = "migrant_led"
    INTERNATIONAL = "international"
    PUBLIC_SERVICE = "public_service"
    SECRETARIAT = "secretariat"


CODE = r"^[a-z][a-z0-9_]{1,40}$"
Code = Annotated[str, Field(pattern=CODE)]


class LocalisedText(Payload):
    fr: str = Field(min_length=1, max_length=300)
    ar: str = Field(default="", max_length=300)
    en: str = Field(default="", max_length=300)


class LocalisedDescription(Payload):
    fr: str = Field(default="", max_length=2000)
    ar: str = Field(default="", max_length=2000)
    en: str = Field(default="", max_length=2000)


class Capacity(StrEnum):
    OPEN = "open"
    WAITLIST = "waitlist"
    CLOSED = "closed"


class Cost(StrEnum):
    FREE = "free"
    CONTRIBUTION = "contribution"
    FEE = "fee"


class Sex(StrEnum):
    ANY = "any"
    FEMALE = "female"
    MALE = "male"


class FocalPoint(Payload):
    """A staff member who triages the organisation's referrals (staff data, not a case's)."""

    name: str = Field(min_length=1, max_length=120)
    role: str = Field(default="", max_length=120)
    email: str = Field(default="", max_length=200, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str = Field(default="", max_length=40, pattern=r"^$|^\+?[0-9 ().-]{6,40}$")


class Eligibility(Payload):
    min_age: int | None = Field(default=None, ge=0, le=120)
    max_age: int | None = Field(default=None, ge=0, le=120)
    sex: Sex = Sex.ANY
    populations: list[Code] = Field(default_factory=list, max_length=20)


class ServiceOffer(Payload):
    """One service an organisation offers: what, for whom, where, in which languages."""

    service_id: Code
    category: Code
    description: LocalisedDescription = LocalisedDescription()
    eligibility: Eligibility = Eligibility()
    languages: list[str] = Field(default_factory=list, max_length=30)
    cities: list[Code] = Field(default_factory=list, max_length=50)
    regions: list[Code] = Field(default_factory=list, max_length=12)
    national: bool = Field(default=False, description="offered anywhere in Morocco")
    hours: str = Field(default="", max_length=300)
    cost: Cost = Cost.FREE
    takes_referrals: bool = True
    capacity: Capacity = Capacity.OPEN
    capacity_set_at: datetime | None = None


class KeyUse(StrEnum):
    ENCRYPTION = "x25519"
    SIGNING = "ed25519"


class PublicKey(Payload):
    """One of the organisation's public keys, with its id and validity, so keys can rotate."""

    key_id: str = Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    use: KeyUse
    public_key: str = Field(
        description="base64 of the raw 32-byte key", pattern=r"^[A-Za-z0-9+/]{43}=$"
    )
    valid_from: datetime
    valid_until: datetime | None = None


@registry.register(
    "relais.organisation.published.v1",
    scope=Scope.NET,
    summary="The hub's authoritative record of one member organisation, broadcast to every node.",
)
class OrganisationPublished(Payload):
    org_id: str = Field(pattern=ORG_ID)
    version: int = Field(ge=1, description="grows by one with every change to this record")
    name: LocalisedText
    kind: OrganisationKind
    status: MembershipStatus
    status_reason: str = Field(
        default="", max_length=500, description="why it was refused, suspended"
    )
    city: Code = Field(description="where it is based: a city code of the reference data")
    node_url: str | None = Field(default=None, max_length=300)
    website: str = Field(default="", max_length=300)
    cities: list[Code] = Field(default_factory=list, max_length=50, description="where it works")
    regions: list[Code] = Field(default_factory=list, max_length=12)
    focal_points: list[FocalPoint] = Field(default_factory=list, max_length=20)
    services: list[ServiceOffer] = Field(default_factory=list, max_length=100)
    keys: list[PublicKey] = Field(default_factory=list, max_length=20)


@registry.register(
    "relais.link.probed.v1",
    scope=Scope.NET,
    summary="A node checks that another node can be reached through the hub.",
)
class LinkProbed(Payload):
    probe_id: str = Field(min_length=1, max_length=64)
    sent_at: datetime


@registry.register(
    "relais.link.answered.v1",
    scope=Scope.NET,
    summary="The probed node answers; the sender learns the round-trip time.",
)
class LinkAnswered(Payload):
    probe_id: str = Field(min_length=1, max_length=64)
    probed_at: datetime
    answered_at: datetime


@registry.register(
    "relais.organisation.change_requested.v1",
    scope=Scope.NET,
    summary="An organisation asks the hub to publish a new version of its own record; its node "
    "signs the record with its Ed25519 key.",
)
class OrganisationChangeRequested(Payload):
    record: OrganisationPublished
    key_id: str = Field(min_length=4, max_length=64)
    signature: str = Field(
        min_length=10,
        max_length=200,
        description="rfc8785:<base64 Ed25519> over the RFC 8785 form of the record",
    )


@registry.register(
    "relais.organisation.change_refused.v1",
    scope=Scope.NET,
    summary="The hub tells an organisation why it did not publish the change it asked for.",
)
class OrganisationChangeRefused(Payload):
    org_id: str = Field(pattern=ORG_ID)
    version: int = Field(ge=1)
    reason: str = Field(max_length=500)
    field: str | None = Field(default=None, max_length=100)


@registry.register(
    "relais.directory.replay_requested.v1",
    scope=Scope.NET,
    summary="A node asks the hub to send it every current directory record again (a new or "
    "rebuilt replica).",
)
class DirectoryReplayRequested(Payload):
    reason: str = Field(default="", max_length=200)


@registry.register(
    "relais.sender.flood_reported.v1",
    scope=Scope.NET,
    summary="A node tells the hub that one organisation sent it more refused envelopes than its "
    "budget allows: the rest are parked as this one incident, for the coordinators to look into "
    "(and suspend the sender if need be). Sent when the incident opens, then as it grows.",
)
class FloodReported(Payload):
    incident_id: str = Field(min_length=1, max_length=64)
    sender: str = Field(pattern=ORG_ID)
    opened_at: datetime
    last_at: datetime
    refused: int = Field(ge=1)


@registry.register(
    "relais.directory.second_link_refused.v1",
    scope=Scope.NET,
    summary="The hub tells a member that it refused a second network link made with the "
    "member's own credentials while its node was linked: someone may hold a copy of its nkey. "
    "Sent when the incident opens (the refusals of the next minutes are counted in it).",
)
class SecondLinkRefused(Payload):
    incident_id: str = Field(min_length=1, max_length=64)
    opened_at: datetime
    host: str | None = Field(
        default=None, max_length=100, description="the address the refused link came from"
    )
