"""The operator's tools after a fault, over HTTP (``/api/v1/node``, the node's administrators
only): dead letters listed, shown, redelivered and discarded; the outbox replayed. What
``relais deadletters`` and ``relais outbox replay`` call, and the admin page too.

Errors are problem details: an unknown letter is 404, a letter already redelivered or
discarded 409 (``/problems/conflict``), a redelivery whose handler fails again 409
(``/problems/redelivery-failed``, the attempt recorded), a bad body 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from shared import deadletters, outbox_replay
from shared.audit_trail import actor_of
from shared.auth import Principal, Role, require
from shared.bus import Bus
from shared.db import Pool
from shared.errors import Unavailable
from shared.runtime import NodeRuntime

router = APIRouter()
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
LetterId = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="the notice's sequence in DEADLETTER")
]


def _runtime(request: Request) -> NodeRuntime:
    runtime: NodeRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[NodeRuntime, Depends(_runtime)]


def _bus_and_pool(runtime: NodeRuntime) -> tuple[Bus, Pool]:
    auth = runtime.contexts.get(deadletters.SCHEMA)
    if runtime.bus is None or auth is None:
        raise Unavailable("the node is starting; try again shortly")
    return runtime.bus, auth.pool


class Discarding(BaseModel):
    reason: str = Field(max_length=2000, description="why it is set aside (no personal data)")


class Replaying(BaseModel):
    since: str = Field(
        max_length=40, description="an outbox sequence (with service) or an ISO 8601 time"
    )
    service: str | None = Field(default=None, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")


@router.get("/dead-letters", summary="Messages a consumer gave up on, newest last (no content)")
async def dead_letters(
    runtime: Runtime, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    bus, pool = _bus_and_pool(runtime)
    return await deadletters.listing(bus, pool, limit)


@router.get("/dead-letters/{letter_id}", summary="One dead letter and what was done with it")
async def dead_letter(runtime: Runtime, _: Admin, letter_id: LetterId) -> dict[str, Any]:
    bus, pool = _bus_and_pool(runtime)
    return await deadletters.describe(bus, pool, letter_id)


@router.post(
    "/dead-letters/{letter_id}/redeliver",
    summary="Hand the message to its consumer again (applied once: consumers are idempotent)",
)
async def redeliver(runtime: Runtime, principal: Admin, letter_id: LetterId) -> dict[str, Any]:
    bus, pool = _bus_and_pool(runtime)
    return await deadletters.redeliver(bus, pool, letter_id, actor_of(principal))


@router.post("/dead-letters/{letter_id}/discard", summary="Set a dead letter aside, saying why")
async def discard(
    runtime: Runtime, principal: Admin, letter_id: LetterId, body: Discarding
) -> dict[str, Any]:
    bus, pool = _bus_and_pool(runtime)
    return await deadletters.discard(bus, pool, letter_id, actor_of(principal), body.reason)


@router.post(
    "/outbox/replay",
    summary="Publish again what the node's services already sent, from a sequence or a time",
)
async def replay(runtime: Runtime, principal: Admin, body: Replaying) -> dict[str, Any]:
    bus, _pool = _bus_and_pool(runtime)
    pools = {name: context.pool for name, context in runtime.contexts.items()}
    return await outbox_replay.replay(
        bus,
        pools,
        runtime.settings.database_url,
        since=outbox_replay.Since.parse(body.since),
        service=body.service,
        actor=actor_of(principal),
    )
