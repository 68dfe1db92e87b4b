"""The fictional network ``relais demo`` runs: a secretariat and three member organisations.

No real organisation is named. Each node gets staff users (passwords made on first run and
kept, so a second run reuses them) and a fresh API bearer token per user on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.directory import (
    LocalisedText,
    MembershipStatus,
    OrganisationKind,
    OrganisationPublished,
)


@dataclass(frozen=True)
class DemoOrg:
    org_id: str
    name: LocalisedText
    kind: OrganisationKind
    city: str
    users: tuple[tuple[str, str], ...]  # (username, role)


HUB = DemoOrg(
    "secretariat",
    LocalisedText(
        fr="Secrétariat du réseau (démo)",
        ar="أمانة الشبكة (عرض تجريبي)",
        en="Network secretariat (demo)",
    ),
    OrganisationKind.SECRETARIAT,
    "Rabat",
    (("coordinator", "coordinator"), ("auditor", "auditor"), ("admin", "admin")),
)

MEMBERS = (
    DemoOrg(
        "sanad",
        LocalisedText(
            fr="Association Sanad pour l'accès au droit",
            ar="جمعية سند للولوج إلى الحق",
            en="Sanad association for access to justice",
        ),
        OrganisationKind.NGO,
        "Rabat",
        (("focal", "focal_point"), ("caseworker", "caseworker"), ("admin", "admin")),
    ),
    DemoOrg(
        "amal",
        LocalisedText(
            fr="Centre de santé communautaire Amal",
            ar="مركز أمل للصحة المجتمعية",
            en="Amal community health centre",
        ),
        OrganisationKind.NGO,
        "Oujda",
        (("focal", "focal_point"), ("caseworker", "caseworker"), ("admin", "admin")),
    ),
    DemoOrg(
        "jusoor",
        LocalisedText(
            fr="Jusoor, association des migrants de Tanger",
            ar="جسور، جمعية المهاجرين بطنجة",
            en="Jusoor, Tangier migrants' association",
        ),
        OrganisationKind.MIGRANT_LED,
        "Tanger",
        (("focal", "focal_point"), ("caseworker", "caseworker"), ("admin", "admin")),
    ),
)


def record(org: DemoOrg, *, version: int, node_url: str) -> OrganisationPublished:
    return OrganisationPublished(
        org_id=org.org_id,
        version=version,
        name=org.name,
        kind=org.kind,
        status=MembershipStatus.ACTIVE,
        city=org.city,
        node_url=node_url,
    )
