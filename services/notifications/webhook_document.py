"""The webhook a member system receives, as OpenAPI 3.1 ``webhooks`` in the node's
``/openapi.json``: the CloudEvent it gets (structured mode) and the Standard Webhooks headers
that sign it. Documentation only: the node sends these (``webhook_channel``), never serves them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from services.notifications.domain import Kind

router = APIRouter()
CONTENT_TYPE = "application/cloudevents+json"
# Every kind a webhook may get (never told that it fails: it is the one failing).
TYPES: list[JsonValue] = [
    f"relais.notification.{k.value}.v1" for k in Kind if k is not Kind.WEBHOOK_DISABLED
]


class NotificationData(BaseModel):
    """What may leave the node: metadata of a referral or of the organisation, never the
    person's data."""

    model_config = ConfigDict(extra="forbid")

    referral_id: str | None = None
    category: str | None = None
    urgency: Literal["emergency", "priority", "routine"] | None = None
    status: str | None = None
    deadline: Literal["acknowledge", "answer"] | None = None
    due_at: datetime | None = Field(default=None, description="UTC ISO 8601")
    membership: str | None = None
    org: str = Field(description="the organisation this node belongs to")
    link: str = Field(description="the page on the node, for people")


class NotificationEvent(BaseModel):
    """A CloudEvents 1.0 event in the HTTP binding's structured mode
    (``Content-Type: application/cloudevents+json; charset=utf-8``)."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"]
    id: str = Field(description="the delivery's id, the same on every retry: drop repeats")
    source: str = Field(examples=["relais://sanad/notifications"])
    type: str = Field(
        description="relais.notification.<kind>.v1",
        json_schema_extra={"enum": TYPES},
    )
    time: datetime = Field(description="when the notification was made, UTC")
    subject: str | None = Field(default=None, description="the referral's (or org's) id")
    datacontenttype: Literal["application/json"]
    data: NotificationData


@router.post(
    "notification",
    summary="A notification for your member system (Standard Webhooks, CloudEvent)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        200: {"description": "any 2xx: delivered"},
        "default": {"description": "anything else (a 3xx too: never followed): tried again"},
    },
)
async def notification(
    event: Annotated[NotificationEvent, Body(media_type=CONTENT_TYPE)],
    webhook_id: Annotated[str, Header(alias="webhook-id", description="= the event's id")],
    webhook_timestamp: Annotated[
        str, Header(alias="webhook-timestamp", description="Unix seconds of this attempt")
    ],
    webhook_signature: Annotated[
        str,
        Header(
            alias="webhook-signature",
            description="v1,<base64 HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>' "
            "keyed with the secret's bytes>",
        ),
    ],
) -> Response:
    """Relais POSTs this to each registered URL; verify it with the ``standardwebhooks``
    package before trusting it (README, Webhooks)."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)
