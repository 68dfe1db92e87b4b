"""The CloudEvents envelope and the event registry."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

import shared.contracts  # noqa: F401 - registers every event type
from shared.asyncapi import SCHEMAS, document
from shared.contracts.audit import AuditRecorded
from shared.contracts.directory import LinkProbed, OrganisationPublished
from shared.contracts.referrals import ReferralChanged
from shared.errors import Invalid
from shared.events import CloudEvent, Scope, make_event, parse_payload, registry


def probe() -> CloudEvent:
    return make_event(
        LinkProbed(probe_id="abc", sent_at=datetime(2026, 1, 2, tzinfo=UTC)),
        source="relais://sanad/directory",
    )


class TestEnvelope:
    def test_an_event_survives_the_round_trip_through_json(self) -> None:
        event = probe()
        again = CloudEvent.from_json(event.to_json())
        assert again == event
        assert parse_payload(again) == LinkProbed(
            probe_id="abc", sent_at=datetime(2026, 1, 2, tzinfo=UTC)
        )

    def test_the_envelope_is_cloudevents_structured_json(self) -> None:
        body = json.loads(probe().to_json())
        assert body["specversion"] == "1.0"
        assert body["type"] == "relais.link.probed.v1"
        assert body["datacontenttype"] == "application/json"
        assert {"id", "source", "time", "data"} <= body.keys()

    def test_event_ids_are_uuid7_and_sort_by_creation(self) -> None:
        ids = [probe().id for _ in range(50)]
        assert all(re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-", i) for i in ids)
        assert ids == sorted(ids)

    def test_fields_a_consumer_does_not_know_are_ignored(self) -> None:
        body = json.loads(probe().to_json())
        body["relaisfuture"] = "an extension attribute"
        body["data"]["added_in_a_later_minor_version"] = 42
        event = CloudEvent.from_json(json.dumps(body).encode())
        assert parse_payload(event) == parse_payload(
            probe().model_copy(update={"data": body["data"]})
        )

    def test_a_message_that_is_not_an_event_is_invalid(self) -> None:
        with pytest.raises(Invalid, match="not a Relais CloudEvent"):
            CloudEvent.from_json(b'{"specversion": "0.3"}')

    def test_data_that_does_not_match_its_type_names_the_field(self) -> None:
        event = probe().model_copy(update={"data": {"probe_id": "x"}})
        with pytest.raises(Invalid, match="sent_at"):
            parse_payload(event)


class TestRegistry:
    def test_every_type_has_a_json_schema(self) -> None:
        schemas = registry.json_schemas()
        assert "relais.organisation.published.v1" in schemas
        assert "org_id" in schemas["relais.organisation.published.v1"]["properties"]

    def test_network_subjects_name_sender_recipient_aggregate_and_event(self) -> None:
        published = registry.for_payload(OrganisationPublished)
        assert published.scope is Scope.NET
        assert published.subject(sender="secretariat", recipient="all") == (
            "relais.net.secretariat.all.organisation.published"
        )

    def test_a_network_subject_needs_both_ends(self) -> None:
        with pytest.raises(Invalid, match="recipient"):
            registry.for_payload(LinkProbed).subject(sender="sanad", recipient="")

    def test_a_local_event_of_one_service_travels_on_that_services_subject_only(self) -> None:
        changed = registry.for_payload(ReferralChanged)
        assert changed.subject_pattern() == "relais.local.referrals.changed"
        assert changed.subject(service="referrals") == "relais.local.referrals.changed"
        with pytest.raises(Invalid):
            changed.subject(service="directory")
        # A record any service writes keeps the wildcard.
        assert registry.for_payload(AuditRecorded).subject_pattern() == "relais.local.*.recorded"

    def test_a_type_cannot_be_registered_twice(self) -> None:
        with pytest.raises(ValueError, match="twice"):
            registry.register("relais.link.probed.v1", scope=Scope.NET, summary="again")(LinkProbed)

    def test_the_asyncapi_document_lists_every_subject_with_its_schema(self) -> None:
        doc = document()
        assert doc["asyncapi"].startswith("3.")
        channel = doc["channels"]["relais_link_probed_v1"]
        assert channel["address"] == "relais.net.{sender}.{recipient}.link.probed"
        message = doc["components"]["messages"]["relais_link_probed_v1"]
        data = message["payload"]["properties"]["data"]["$ref"].removeprefix(SCHEMAS)
        assert "probe_id" in doc["components"]["schemas"][data]["properties"]
        events = [
            key
            for key in doc["channels"]
            if not key.startswith("relais_cmd_") and key != "member_system_feed"
        ]
        assert len(events) == len(list(registry))
        feed = doc["channels"]["member_system_feed"]["messages"]
        assert set(feed) == {"relais_referral_changed_v1", "relais_referral_deadline_v1"}
