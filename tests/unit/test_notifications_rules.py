"""Who is told what and how (notifications' pure rules), what leaves the node, retry timing."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from services.notifications import domain
from services.notifications.domain import (
    DEFAULT_RULES,
    Channel,
    Facts,
    Kind,
    OrganisationSeen,
    Preference,
    StaffMember,
    Trigger,
    Webhook,
)
from services.notifications.handlers import digest_cutoff
from services.notifications.messages import Writer
from services.notifications.webhook_channel import _refused, check_url, sign
from shared.errors import Invalid

STAFF = [
    StaffMember("focal", "focal_point", "fr"),
    StaffMember("nour", "focal_point", "ar"),
    StaffMember("cw", "caseworker", "fr"),
    StaffMember("other", "caseworker", "fr"),
    StaffMember("admin", "admin", "fr"),
]
ALL = frozenset(Channel)


def received(urgency: str = "routine") -> Trigger:
    facts = Facts(referral_id="r", category="legal_aid", urgency=urgency, from_org="amal")
    trigger = domain.referral_change(
        "e1", box="inbox", change="received", facts=facts, created_by=None
    )
    assert trigger is not None
    return trigger


def plan(trigger: Trigger, preferences: dict[str, Preference] | None = None) -> domain.Plan:
    rule = DEFAULT_RULES[trigger.kind]
    return domain.plan(trigger, rule, STAFF, preferences or {}, [], ALL)


class TestWhoIsTold:
    def test_a_received_referral_tells_the_focal_points_only(self) -> None:
        assert [p.username for p in plan(received()).people] == ["focal", "nour"]

    def test_an_answer_tells_the_case_worker_who_sent_the_referral(self) -> None:
        trigger = domain.referral_change(
            "e", box="outbox", change="declined", facts=Facts(), created_by="cw"
        )
        assert trigger is not None and trigger.kind is Kind.REFERRAL_OUTCOME
        assert [p.username for p in plan(trigger).people] == ["cw"]

    def test_what_our_own_staff_did_tells_nobody(self) -> None:
        for box, change in (("outbox", "sent"), ("inbox", "accepted"), ("inbox", "completed")):
            facts = Facts()
            assert (
                domain.referral_change("e", box=box, change=change, facts=facts, created_by="cw")
                is None
            )

    def test_a_deadline_of_a_referral_sent_tells_its_case_worker_too(self) -> None:
        trigger = domain.deadline("e", box="outbox", kind="breach", facts=Facts(), created_by="cw")
        assert [p.username for p in plan(trigger).people] == ["cw", "focal", "nour"]

    def test_an_organisation_adjusts_who_is_told(self) -> None:
        rule = domain.Rule(True, frozenset({"admin"}), False, frozenset({Channel.IN_APP}))
        people = domain.plan(received(), rule, STAFF, {}, [], ALL).people
        assert [(p.username, p.channels) for p in people] == [("admin", frozenset())]

    def test_a_disabled_rule_tells_nobody_but_never_silences_an_emergency(self) -> None:
        rule = domain.Rule(False, frozenset({"focal_point"}), False, frozenset({Channel.IN_APP}))
        assert domain.plan(received(), rule, STAFF, {}, [], ALL).people == []
        urgent = domain.plan(received("emergency"), rule, STAFF, {}, [], ALL).people
        assert [p.username for p in urgent] == ["focal", "nour"]


class TestChannels:
    def test_outside_channels_need_an_address_and_a_configured_channel(self) -> None:
        prefs = {"focal": Preference("focal", email="f@x.example", phone="+212600000000")}
        (focal, nour) = plan(received(), prefs).people
        assert focal.channels == {Channel.EMAIL, Channel.SMS}
        assert nour.channels == frozenset()  # no contact: the feed only
        trigger = received()
        only_mail = frozenset({Channel.IN_APP, Channel.EMAIL})
        rule = DEFAULT_RULES[trigger.kind]
        (focal, _) = domain.plan(trigger, rule, STAFF, prefs, [], only_mail).people
        assert focal.channels == {Channel.EMAIL}

    def test_a_digest_holds_routine_notifications_not_emergencies(self) -> None:
        prefs = {
            "focal": Preference(
                "focal",
                email="f@x.example",
                digest=True,
                channels={Kind.REFERRAL_RECEIVED: frozenset({Channel.IN_APP})},
            )
        }
        (routine, _) = plan(received(), prefs).people
        assert routine.channels == frozenset() and routine.held
        (urgent, _) = plan(received("emergency"), prefs).people
        assert urgent.channels == {Channel.EMAIL} and not urgent.held

    def test_webhooks_get_the_kinds_they_asked_for(self) -> None:
        hooks = [Webhook("a", frozenset()), Webhook("b", frozenset({Kind.DEADLINE_BREACH}))]
        rule = DEFAULT_RULES[Kind.REFERRAL_RECEIVED]
        assert domain.plan(received(), rule, STAFF, {}, hooks, ALL).webhooks == ["a"]

    def test_an_admin_cannot_route_a_webhook_failure_to_webhooks(self) -> None:
        rule = domain.Rule(True, frozenset({"admin"}), False, frozenset(), webhook=True)
        with pytest.raises(Invalid):
            domain.check_rule(Kind.WEBHOOK_DISABLED, rule)


class TestPrivacy:
    def test_only_category_urgency_deadline_status_and_id_leave_the_node(self) -> None:
        facts = Facts(
            referral_id="r",
            category="legal_aid",
            urgency="emergency",
            status="received",
            deadline="answer",
            due_at=datetime(2026, 1, 1, tzinfo=UTC),
            from_org="amal",
            to_org="sanad",
            change="received",
        )
        assert facts.outside_view() == {
            "referral_id": "r",
            "category": "legal_aid",
            "urgency": "emergency",
            "status": "received",
            "deadline": "answer",
            "due_at": "2026-01-01T00:00:00+00:00",
        }

    def test_unknown_fields_of_an_event_are_dropped(self) -> None:
        facts = Facts.model_validate({"category": "legal_aid", "name": "Fatou"})
        assert "Fatou" not in facts.model_dump_json()


class TestOwnOrganisation:
    def test_admins_are_told_of_a_new_status_and_new_keys_not_of_the_first_record(self) -> None:
        first = OrganisationSeen(1, "applicant", frozenset({"k1"}))
        assert domain.organisation_changes("e", "sanad", None, first) == []
        admitted = OrganisationSeen(2, "active", frozenset({"k2"}))
        kinds = [t.kind for t in domain.organisation_changes("e", "sanad", first, admitted)]
        assert kinds == [Kind.MEMBERSHIP_CHANGED, Kind.KEYS_CHANGED]
        assert domain.organisation_changes("e", "sanad", admitted, first) == []  # late, older


class TestRetries:
    def test_back_off_doubles_up_to_its_cap_with_jitter(self) -> None:
        delays = [domain.retry_delay(n, base=30, cap=3600, jitter=0.0) for n in range(1, 10)]
        assert delays == [15, 30, 60, 120, 240, 480, 960, 1800, 1800]
        assert domain.retry_delay(3, base=30, cap=3600, jitter=0.999) == pytest.approx(120, 0.01)

    def test_the_digest_goes_at_its_hour_local_time(self) -> None:
        evening = datetime(2026, 6, 10, 18, 30, tzinfo=UTC)  # 19:30 in Casablanca (UTC+1)
        assert digest_cutoff(evening, hour=18, timezone="Africa/Casablanca") == datetime(
            2026, 6, 10, 17, 0, tzinfo=UTC
        )
        morning = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
        assert digest_cutoff(morning, hour=18, timezone="Africa/Casablanca") == datetime(
            2026, 6, 9, 17, 0, tzinfo=UTC
        )


class TestWebhookEdges:
    def test_the_signature_is_hmac_sha256_of_timestamp_dot_body(self) -> None:
        expected = hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert sign("s3cret", "1700000000", b"{}") == f"sha256={expected}"

    @pytest.mark.parametrize(
        "address",
        ["127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.0.1", "169.254.169.254", "::1",
         "fe80::1", "fd12::1", "::ffff:10.0.0.1", "0.0.0.0"],
    )  # fmt: skip
    def test_internal_addresses_are_refused(self, address: str) -> None:
        assert _refused(address, [])

    def test_an_allowed_network_is_reachable_and_public_ones_always(self) -> None:
        assert not _refused("127.0.0.1", ["127.0.0.0/8"])
        assert _refused("10.0.0.1", ["127.0.0.0/8"])
        assert not _refused("93.184.215.14", [])

    @pytest.mark.parametrize(
        "url", ["ftp://x.org/", "https://", "https://user:pw@x.org/", "x.org/hook"]
    )
    def test_what_is_not_an_http_url_is_invalid(self, url: str) -> None:
        with pytest.raises(Invalid) as error:
            check_url(url)
        assert error.value.field == "url"


LABELS = {"primary_health": {"fr": "Soins de santé primaires", "ar": "الرعاية الصحية الأولية"}}


class TestCategoryNames:
    """A mail names the category in the reader's language once the directory told it."""

    def test_the_label_in_the_readers_language(self) -> None:
        facts = domain.Facts(category="primary_health", urgency="routine")
        for lang, expected in (
            ("ar", "الرعاية الصحية الأولية"),
            ("fr", "Soins de santé primaires"),
        ):
            writer = Writer(lang, base_url="http://n", timezone="UTC", categories=LABELS)
            item = writer.item(domain.Kind.REFERRAL_RECEIVED, facts)
            assert (item.details[0][1]) == expected

    def test_french_when_the_language_has_no_label_and_the_code_when_nothing_is_known(
        self,
    ) -> None:
        writer = Writer("en", base_url="http://n", timezone="UTC", categories=LABELS)
        assert writer.category("primary_health") == "Soins de santé primaires"
        assert writer.category("shelter") == "shelter"


class TestANewMessage:
    """A message on a referral tells the other side that there is one, never what it says."""

    def messaged(self, box: str) -> Trigger:
        facts = Facts(referral_id="r", category="legal_aid", urgency="emergency", change="messaged")
        trigger = domain.referral_change(
            "e", box=box, change="messaged", facts=facts, created_by="cw"
        )
        assert trigger is not None
        return trigger

    def test_on_a_referral_received_it_tells_the_focal_points(self) -> None:
        trigger = self.messaged("inbox")
        assert trigger.kind is Kind.INBOX_MESSAGE
        assert [p.username for p in plan(trigger).people] == ["focal", "nour"]

    def test_on_a_referral_sent_it_tells_the_case_worker_who_sent_it(self) -> None:
        trigger = self.messaged("outbox")
        assert trigger.kind is Kind.OUTBOX_MESSAGE
        assert [p.username for p in plan(trigger).people] == ["cw"]

    @pytest.mark.parametrize(
        "lang, expected",
        [
            ("fr", "Un nouveau message sur une orientation vers votre organisation : Urgence"),
            ("ar", "رسالة جديدة بشأن إحالة إلى منظمتكم"),
            ("en", "A new message on a referral to your organisation: Emergency, Legal aid"),
        ],
    )
    def test_the_mail_says_on_what_urgency_and_service_in_the_readers_language(
        self, lang: str, expected: str
    ) -> None:
        labels = {"legal_aid": {"fr": "Aide juridique", "ar": "مساعدة قانونية", "en": "Legal aid"}}
        writer = Writer(lang, base_url="http://n", timezone="UTC", categories=labels)
        rendered = writer.single(Kind.INBOX_MESSAGE, self.messaged("inbox").facts)
        assert expected in rendered.subject
        assert rendered.subject.count(labels["legal_aid"][lang]) == 1


class TestANewDocument:
    """A verified file on a referral tells the other side that one came, never its name."""

    def attached(self, box: str) -> Trigger:
        facts = Facts(referral_id="r", category="legal_aid", urgency="emergency", change="attached")
        trigger = domain.referral_change(
            "e", box=box, change="attached", facts=facts, created_by="cw"
        )
        assert trigger is not None
        return trigger

    def test_on_a_referral_received_it_tells_the_focal_points(self) -> None:
        trigger = self.attached("inbox")
        assert trigger.kind is Kind.INBOX_FILE
        assert [p.username for p in plan(trigger).people] == ["focal", "nour"]

    def test_on_a_referral_sent_it_tells_the_case_worker_who_sent_it(self) -> None:
        trigger = self.attached("outbox")
        assert trigger.kind is Kind.OUTBOX_FILE
        assert [p.username for p in plan(trigger).people] == ["cw"]

    @pytest.mark.parametrize(
        "lang, expected",
        [
            ("fr", "Un nouveau document sur une orientation vers votre organisation : Urgence"),
            ("ar", "وثيقة جديدة بشأن إحالة إلى منظمتكم"),
            ("en", "A new document on a referral to your organisation: Emergency, Legal aid"),
        ],
    )
    def test_the_mail_says_on_what_in_the_readers_language(self, lang: str, expected: str) -> None:
        labels = {"legal_aid": {"fr": "Aide juridique", "ar": "مساعدة قانونية", "en": "Legal aid"}}
        writer = Writer(lang, base_url="http://n", timezone="UTC", categories=labels)
        rendered = writer.single(Kind.INBOX_FILE, self.attached("inbox").facts)
        assert expected in rendered.subject
