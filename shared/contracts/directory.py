"""Events the directory publishes: the member roster and the links between nodes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from shared.events import Payload, Scope, registry

ORG_ID = r"^[a-z][a-z0-9_]{1,30}$"


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


class LocalisedText(Payload):
    fr: str = Field(min_length=1, max_length=300)
    ar: str = Field(default="", max_length=300)
    en: str = Field(default="", max_length=300)


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
    city: str = Field(max_length=100)
    node_url: str | None = Field(default=None, max_length=300)


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
