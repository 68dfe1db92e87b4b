"""The notification feed's items, written from their facts in the page's language: what
happened, from and to which organisation (by its name in that language), the service, the
urgency and the deadline, and a link only where the reader may go."""

from __future__ import annotations

from typing import Any

import pytest

from services.dashboard import feed, labels

NAMES = {
    "fr": {"sanad": "Association Sanad", "amal": "Fondation Amal", "hub": "Secrétariat"},
    "ar": {"sanad": "جمعية سند", "amal": "مؤسسة أمل", "hub": "الأمانة"},
    "en": {"sanad": "Sanad Association", "amal": "Amal Foundation", "hub": "Secretariat"},
}
CATEGORIES = {
    "fr": {"primary_health": "Soins de santé primaires"},
    "ar": {"primary_health": "الرعاية الصحية الأولية"},
    "en": {"primary_health": "Primary health care"},
}
DUE = "2026-06-10T17:30:00+00:00"
REFERRAL = {
    "referral_id": "0190a000-0000-7000-8000-000000000001",
    "category": "primary_health",
    "urgency": "priority",
    "status": "sent",
    "from_org": "sanad",
    "to_org": "amal",
}


def item(kind: str, **facts: Any) -> dict[str, Any]:
    return {
        "id": "0190a000-0000-7000-8000-0000000000aa",
        "kind": kind,
        "title": "Une nouvelle orientation attend votre organisation",  # the account's language
        "facts": facts,
        "emergency": facts.get("urgency") == "emergency",
        "created_at": "2026-06-10T09:00:00+00:00",
        "read": False,
    }


def written(kind: str, lang: str, reader_org: str = "amal", **facts: Any) -> feed.FeedEntry:
    return feed.entry(
        item(kind, **facts),
        lang,
        reader_org=reader_org,
        org_names=NAMES[lang],
        categories=CATEGORIES[lang],
    )


def details(entry: feed.FeedEntry) -> dict[str, str]:
    return dict(entry.details)


# What each kind says, per language: (kind, extra facts, {lang: words the headline has}).
HEADLINES = [
    (
        "referral_received",
        {},
        {
            "fr": "Association Sanad a adressé une orientation à votre organisation",
            "ar": "أرسلت جمعية سند إحالة إلى منظمتكم",
            "en": "Sanad Association sent your organisation a referral",
        },
    ),
    (
        "referral_outcome",
        {"status": "declined", "change": "declined"},
        {
            "fr": "Fondation Amal a répondu à votre orientation : Déclinée",
            "ar": "ردّت مؤسسة أمل على إحالتكم: مرفوضة",
            "en": "Amal Foundation answered your referral: Declined",
        },
    ),
    (
        "referral_closed",
        {"status": "withdrawn", "change": "withdrawn"},
        {
            "fr": "L'orientation venant de Association Sanad est close : Retirée",
            "ar": "أُغلقت الإحالة الواردة من جمعية سند: مسحوبة",
            "en": "The referral from Sanad Association is closed: Withdrawn",
        },
    ),
    (
        "consent_revoked",
        {},
        {
            "fr": "de Association Sanad vers Fondation Amal : ses données sont effacées",
            "ar": "سُحبت الموافقة على الإحالة من جمعية سند إلى مؤسسة أمل",
            "en": "Consent was withdrawn for the referral from Sanad Association to Amal",
        },
    ),
    (
        "data_erased",
        {},
        {
            "fr": "Fondation Amal a effacé les données de votre orientation",
            "ar": "محت مؤسسة أمل بيانات إحالتكم",
            "en": "Amal Foundation erased the data of your referral",
        },
    ),
    (
        "deadline_reminder",
        {"deadline": "answer", "due_at": DUE},
        {
            "fr": "Un délai approche : orientation de Association Sanad vers Fondation Amal",
            "ar": "يقترب أجل: إحالة من جمعية سند إلى مؤسسة أمل",
            "en": "A deadline comes near: referral from Sanad Association to Amal Foundation",
        },
    ),
    (
        "deadline_breach",
        {"deadline": "acknowledge", "due_at": DUE},
        {
            "fr": "Un délai est dépassé : orientation de Association Sanad vers Fondation Amal",
            "ar": "انقضى أجل: إحالة من جمعية سند إلى مؤسسة أمل",
            "en": "A deadline passed: referral from Sanad Association to Amal Foundation",
        },
    ),
    (
        "referral_escalated",
        {"deadline": "answer", "due_at": DUE},
        {
            "fr": "Une orientation de Association Sanad vers Fondation Amal a dépassé son délai",
            "ar": "تجاوزت إحالة من جمعية سند إلى مؤسسة أمل أجلها",
            "en": "A referral from Sanad Association to Amal Foundation passed its deadline",
        },
    ),
]


@pytest.mark.parametrize("lang", ["fr", "ar", "en"])
@pytest.mark.parametrize(("kind", "extra", "expected"), HEADLINES, ids=[h[0] for h in HEADLINES])
def test_each_referral_kind_says_what_happened_and_between_whom(
    kind: str, extra: dict[str, Any], expected: dict[str, str], lang: str
) -> None:
    entry = written(kind, lang, **{**REFERRAL, **extra})
    assert expected[lang] in entry.headline
    shown = details(entry)
    assert NAMES[lang]["sanad"] in shown.values()
    assert NAMES[lang]["amal"] in shown.values()
    assert CATEGORIES[lang]["primary_health"] in shown.values()


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "fr",
            {
                "De": "Association Sanad",
                "À": "Fondation Amal",
                "Service": "Soins de santé primaires",
            },
        ),
        ("ar", {"من": "جمعية سند", "إلى": "مؤسسة أمل", "الخدمة": "الرعاية الصحية الأولية"}),
        (
            "en",
            {
                "From": "Sanad Association",
                "To": "Amal Foundation",
                "Service": "Primary health care",
            },
        ),
    ],
)
def test_the_facts_are_labelled_in_the_page_language(lang: str, words: dict[str, str]) -> None:
    entry = written("referral_received", lang, **REFERRAL)
    assert details(entry) == words
    assert entry.urgency == "priority"
    assert entry.urgency_label == {"fr": "Prioritaire", "ar": "ذات أولوية", "en": "Priority"}[lang]


@pytest.mark.parametrize(
    ("lang", "deadline", "label"),
    [
        ("fr", "answer", "Répondre avant"),
        ("ar", "acknowledge", "الإقرار بالاستلام قبل"),
        ("en", "answer", "Answer by"),
    ],
)
def test_a_deadline_is_named_and_dated_with_the_pages_clock(
    lang: str, deadline: str, label: str
) -> None:
    entry = written("deadline_reminder", lang, **REFERRAL, deadline=deadline, due_at=DUE)
    shown = details(entry)
    assert shown[label] == labels.moment(DUE, lang)  # the pages' one notion of time
    assert shown[label]
    assert entry.at == labels.moment("2026-06-10T09:00:00+00:00", lang)


def test_an_emergency_is_marked_as_such() -> None:
    entry = written("referral_received", "ar", **{**REFERRAL, "urgency": "emergency"})
    assert entry.emergency
    assert entry.urgency_label == "طارئة"


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("fr", "Statut d'adhésion de votre organisation : Suspendue"),
        ("ar", "موقوفة"),
        ("en", "Your organisation's membership is now: Suspended"),
    ],
)
def test_membership_changes_name_the_new_state(lang: str, words: str) -> None:
    entry = written("membership_changed", lang, org_id="amal", membership="suspended")
    assert words in entry.headline
    assert entry.link == "/directory/amal"


@pytest.mark.parametrize("lang", ["fr", "ar", "en"])
def test_keys_and_webhooks_are_worded_too(lang: str) -> None:
    keys = written("keys_changed", lang, org_id="amal")
    hook = written("webhook_disabled", lang, webhook_url="https://amal.example/hook")
    assert keys.headline and hook.headline and keys.headline != hook.headline
    assert "%(" not in keys.headline + hook.headline
    assert hook.link is None


def test_the_link_leads_only_where_the_reader_may_go() -> None:
    ours = written("referral_received", "fr", reader_org="amal", **REFERRAL)
    assert ours.link == f"/referrals/{REFERRAL['referral_id']}"
    sender = written("referral_outcome", "fr", reader_org="sanad", **REFERRAL)
    assert sender.link == ours.link
    # The secretariat's coordinator hears of an escalation, but the referral is not theirs.
    hub = written("referral_escalated", "fr", reader_org="hub", **REFERRAL, due_at=DUE)
    assert hub.link is None


def test_an_organisation_the_directory_does_not_name_shows_its_code() -> None:
    entry = written("referral_received", "en", **{**REFERRAL, "from_org": "newcomer"})
    assert entry.headline == "newcomer sent your organisation a referral"


def test_facts_without_an_organisation_still_read_as_a_sentence() -> None:
    entry = written("referral_received", "fr", category="primary_health")
    assert entry.headline == "Une organisation a adressé une orientation à votre organisation"


def test_nothing_but_the_listed_facts_reaches_the_page() -> None:
    # Should a fact the feed does not know ever be stored, the page does not show it.
    entry = written("referral_received", "en", **REFERRAL, given_name="Moussa", note="Toux")
    everything = entry.headline + repr(entry.details)
    assert "Moussa" not in everything and "Toux" not in everything


def test_a_kind_this_page_does_not_know_is_said_plainly() -> None:
    entry = written("something_new", "ar", **REFERRAL)
    assert entry.headline == "إشعار من نوع لا تعرفه هذه الصفحة بعد"


def test_read_state_is_kept() -> None:
    read = feed.entry(
        {**item("referral_received", **REFERRAL), "read": True},
        "fr",
        reader_org="amal",
        org_names=NAMES["fr"],
        categories=CATEGORIES["fr"],
    )
    assert read.read
    assert not written("referral_received", "fr", **REFERRAL).read


class TestGroupedByReferral:
    def entry(self, number: int, lang: str = "fr", **facts: Any) -> feed.FeedEntry:
        raw = item("referral_outcome", **facts)
        raw["id"] = f"0190a000-0000-7000-8000-{number:012d}"
        return feed.entry(
            raw, lang, reader_org="sanad", org_names=NAMES[lang], categories=CATEGORIES[lang]
        )

    def test_a_referrals_notifications_are_together_in_the_order_of_their_newest(self) -> None:
        other = {**REFERRAL, "referral_id": "0190a000-0000-7000-8000-000000000002"}
        # Newest first, as the API sends them: a, b, a, (no referral), b.
        entries = [
            self.entry(5, **REFERRAL, change="accepted"),
            self.entry(4, **other, change="declined"),
            self.entry(3, **REFERRAL, change="received"),
            feed.entry(
                item("keys_changed", org_id="sanad"),
                "fr",
                reader_org="sanad",
                org_names=NAMES["fr"],
                categories=CATEGORIES["fr"],
            ),
            self.entry(1, **other, change="received"),
        ]
        groups = feed.grouped(entries)
        assert [g.key for g in groups] == [
            REFERRAL["referral_id"],
            other["referral_id"],
            "notification-0190a000-0000-7000-8000-0000000000aa",
        ]
        assert [e.id[-1] for e in groups[0].items] == ["5", "3"]
        assert [e.id[-1] for e in groups[1].items] == ["4", "1"]
        assert groups[2].heading == ""  # about no referral: no heading

    def test_the_heading_names_the_two_organisations_and_the_service_in_the_pages_language(
        self,
    ) -> None:
        (group,) = feed.grouped([self.entry(1, **REFERRAL, change="accepted")])
        assert group.heading == (
            "Orientation de Association Sanad vers Fondation Amal · Soins de santé primaires"
        )
        (arabic,) = feed.grouped([self.entry(1, "ar", **REFERRAL, change="accepted")])
        assert arabic.heading == "إحالة من جمعية سند إلى مؤسسة أمل · الرعاية الصحية الأولية"
