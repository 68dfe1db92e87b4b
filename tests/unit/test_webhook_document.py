"""The webhook a member system receives is documented in the node's ``/openapi.json`` (OpenAPI
3.1 ``webhooks``): the CloudEvent, its content type and the Standard Webhooks headers."""

from __future__ import annotations

from openapi_spec_validator import validate

from deploy.node import build_app
from services.notifications.domain import Kind
from shared.settings import DEMO_SECRET, NodeSettings


def test_the_openapi_document_describes_the_webhook_a_member_system_receives() -> None:
    settings = NodeSettings(
        node_id="amal",
        org="amal",
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        secret_key=DEMO_SECRET,
        demo=True,
    )
    document = build_app(settings).openapi()
    validate(document)
    post = document["webhooks"]["notification"]["post"]
    headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    (content_type,) = post["requestBody"]["content"]
    assert content_type == "application/cloudevents+json"
    event = document["components"]["schemas"]["NotificationEvent"]
    assert set(event["required"]) >= {"specversion", "id", "source", "type", "time", "data"}
    assert "relais.notification.referral_received.v1" in event["properties"]["type"]["enum"]
    assert (
        f"relais.notification.{Kind.WEBHOOK_DISABLED.value}.v1"
        not in (event["properties"]["type"]["enum"])
    )
