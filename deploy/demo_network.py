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
    PublicKey,
    ServiceOffer,
)


@dataclass(frozen=True)
class DemoOrg:
    org_id: str
    name: LocalisedText
    kind: OrganisationKind
    city: str
    users: tuple[tuple[str, str], ...]  # (username, role)
    services: tuple[ServiceOffer, ...] = ()
    website: str = ""


def offer(
    service_id: str, category: str, description: dict[str, str], **fields: object
) -> ServiceOffer:
    """A service of the demo, described in French, Arabic and English as a member would: an
    Arabic page shows Arabic text, not French in the wrong direction."""
    return ServiceOffer.model_validate(
        {"service_id": service_id, "category": category, "description": description, **fields}
    )


HUB = DemoOrg(
    "secretariat",
    LocalisedText(
        fr="Secrétariat du réseau (démo)",
        ar="أمانة الشبكة (عرض تجريبي)",
        en="Network secretariat (demo)",
    ),
    OrganisationKind.SECRETARIAT,
    "rabat",
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
        "rabat",
        (("focal", "focal_point"), ("caseworker", "caseworker"), ("admin", "admin")),
        (
            offer(
                "permanence_juridique",
                "legal_aid",
                {
                    "fr": "Permanence juridique : conseil, accompagnement devant les tribunaux.",
                    "ar": "مداومة قانونية: استشارة ومرافقة أمام المحاكم.",
                    "en": "Legal aid desk: advice, support before the courts.",
                },
                languages=["fra", "ara", "ary", "eng"],
                cities=["rabat", "sale", "temara"],
            ),
            offer(
                "asile_regularisation",
                "asylum_regularisation",
                {
                    "fr": "Accompagnement des demandes d'asile et de régularisation.",
                    "ar": "مرافقة طلبات اللجوء وتسوية الوضعية.",
                    "en": "Support with asylum and regularisation applications.",
                },
                languages=["fra", "ary", "eng", "spa"],
                regions=["rabat_sale_kenitra"],
                capacity="waitlist",
            ),
        ),
        "https://sanad.example.org",
    ),
    DemoOrg(
        "amal",
        LocalisedText(
            fr="Centre de santé communautaire Amal",
            ar="مركز أمل للصحة المجتمعية",
            en="Amal community health centre",
        ),
        OrganisationKind.NGO,
        "oujda",
        (("focal", "focal_point"), ("caseworker", "caseworker"), ("admin", "admin")),
        (
            offer(
                "soins_primaires",
                "primary_health",
                {
                    "fr": "Consultations de médecine générale, orientation vers l'hôpital.",
                    "ar": "استشارات في الطب العام، وتوجيه نحو المستشفى.",
                    "en": "General medical consultations, referral to hospital.",
                },
                languages=["ary", "fra", "eng"],
                cities=["oujda", "nador", "berkane"],
            ),
            offer(
                "ecoute_psychosociale",
                "mental_health_psychosocial",
                {
                    "fr": "Écoute et soutien psychosocial, groupes de parole.",
                    "ar": "إنصات ودعم نفسي واجتماعي، ومجموعات للحوار.",
                    "en": "Listening and psychosocial support, discussion groups.",
                },
                languages=["fra", "eng", "ary"],
                cities=["oujda"],
            ),
            offer(
                "sante_femmes",
                "sexual_reproductive_health",
                {
                    "fr": "Suivi de grossesse et santé sexuelle et reproductive.",
                    "ar": "تتبّع الحمل والصحة الجنسية والإنجابية.",
                    "en": "Pregnancy follow-up and sexual and reproductive health.",
                },
                languages=["fra", "ary"],
                cities=["oujda", "nador"],
                eligibility={"sex": "female", "populations": ["women"]},
            ),
        ),
    ),
    DemoOrg(
        "jusoor",
        LocalisedText(
            fr="Jusoor, association des migrants de Tanger",
            ar="جسور، جمعية المهاجرين بطنجة",
            en="Jusoor, Tangier migrants' association",
        ),
        OrganisationKind.MIGRANT_LED,
        "tanger",
        (("focal", "focal_point"), ("caseworker", "caseworker"), ("admin", "admin")),
        (
            offer(
                "interpretariat",
                "interpretation",
                {
                    "fr": "Interprètes bénévoles pour accompagner les démarches.",
                    "ar": "مترجمون متطوعون لمرافقة الإجراءات.",
                    "en": "Volunteer interpreters to go along with procedures.",
                },
                languages=["wol", "bam", "lin", "fra", "eng"],
                national=True,
            ),
            offer(
                "accueil_urgence",
                "shelter",
                {
                    "fr": "Hébergement d'urgence pour femmes et enfants.",
                    "ar": "إيواء مستعجل للنساء والأطفال.",
                    "en": "Emergency shelter for women and children.",
                },
                languages=["fra", "eng", "wol"],
                cities=["tanger", "tetouan"],
                capacity="waitlist",
                eligibility={"populations": ["women", "children"]},
            ),
            offer(
                "aide_alimentaire",
                "food_basic_needs",
                {
                    "fr": "Distribution alimentaire et produits de première nécessité.",
                    "ar": "توزيع الغذاء والمواد الأساسية.",
                    "en": "Food distribution and basic necessities.",
                },
                languages=["fra", "eng", "wol", "bam"],
                cities=["tanger"],
            ),
        ),
    ),
)


def record(
    org: DemoOrg, *, version: int, node_url: str, keys: list[PublicKey]
) -> OrganisationPublished:
    return OrganisationPublished(
        org_id=org.org_id,
        version=version,
        name=org.name,
        kind=org.kind,
        status=MembershipStatus.ACTIVE,
        city=org.city,
        cities=sorted({org.city, *(c for o in org.services for c in o.cities)}),
        node_url=node_url,
        website=org.website,
        services=list(org.services),
        keys=keys,
    )
