"""What the directory listens to: the hub's broadcasts of the roster, change requests and
their answers, link probes; and the requests other services of the node send it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.directory import handlers, matching, reference
from shared import asyncapi
from shared.bus import Responder, Subscription
from shared.contracts.directory import (
    ORG_ID,
    DirectoryReplayRequested,
    FloodReported,
    LinkAnswered,
    LinkProbed,
    OrganisationChangeRefused,
    OrganisationChangeRequested,
    OrganisationPublished,
)
from shared.errors import Invalid
from shared.federation import INBOX
from shared.service import ServiceContext


def subscriptions(ctx: ServiceContext) -> list[Subscription]:
    return [
        Subscription.routing(
            INBOX,
            "directory",
            {
                OrganisationPublished: ctx.bound(handlers.replicate_organisation),
                LinkProbed: ctx.bound(handlers.answer_probe),
                LinkAnswered: ctx.bound(handlers.record_answer),
                OrganisationChangeRequested: ctx.bound(handlers.apply_change_request),
                OrganisationChangeRefused: ctx.bound(handlers.record_refusal),
                DirectoryReplayRequested: ctx.bound(handlers.replay_directory),
                FloodReported: ctx.bound(handlers.record_flood),
            },
            batch=200,
            batch_handler=lambda items: handlers.replicate_organisations(ctx, items),
        )
    ]


class OrganisationRequest(BaseModel):
    org_id: str = Field(pattern=ORG_ID)


asyncapi.command(
    "relais.cmd.directory.organisation",
    OrganisationRequest,
    OrganisationPublished,
    "This node's copy of one organisation's record (readable while the hub is away)",
)


class NoArguments(BaseModel):
    pass


asyncapi.command(
    "relais.cmd.directory.categories",
    NoArguments,
    None,
    "The service categories' names in French, Arabic and English: {code: {fr, ar, en}}",
)
asyncapi.command(
    "relais.cmd.directory.match",
    matching.MatchRequest,
    None,
    "Ranked suggestions for a need: a list of {org_id, org_name, service, score, reasons}",
)


def commands(ctx: ServiceContext) -> dict[str, Responder]:
    """Request/reply on the node's own NATS, for services that may not import this one."""

    async def organisation(request: dict[str, Any]) -> dict[str, Any]:
        org_id = request.get("org_id")
        if not isinstance(org_id, str):
            raise Invalid("which organisation?", field="org_id")
        return (await handlers.organisation(ctx, org_id)).model_dump(mode="json")

    async def match(request: dict[str, Any]) -> list[dict[str, Any]]:
        suggestions = await handlers.match(
            ctx, matching.MatchRequest.model_validate(request), ctx.settings.org
        )
        return [suggestion.model_dump(mode="json") for suggestion in suggestions]

    async def categories(_: dict[str, Any]) -> dict[str, dict[str, str]]:
        return {code: dict(c.label) for code, c in reference.categories().items()}

    return {
        "relais.cmd.directory.categories": categories,
        "relais.cmd.directory.organisation": organisation,
        "relais.cmd.directory.match": match,
    }
