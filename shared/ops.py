"""The node's own operations API (``/api/v1/node``): what an administrator needs to see when
events do not flow — the streams' state and the messages consumers gave up on."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from nats.js.errors import NotFoundError

from shared.auth import Principal, Role, require
from shared.federation import DEADLETTER, INBOX, LOCAL, OUTBOX
from shared.runtime import NodeRuntime

router = APIRouter()
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


def _runtime(request: Request) -> NodeRuntime:
    runtime: NodeRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[NodeRuntime, Depends(_runtime)]


@router.get("/dead-letters", summary="Messages a consumer gave up on, newest last (no content)")
async def dead_letters(
    runtime: Runtime, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    assert runtime.bus is not None
    return [asdict(letter) for letter in await runtime.bus.dead_letters(limit)]


@router.get("/streams", summary="This node's streams: messages held and, for the inbox, its link")
async def streams(runtime: Runtime, _: Admin) -> list[dict[str, Any]]:
    assert runtime.bus is not None
    found = []
    for name in (OUTBOX, INBOX, LOCAL, DEADLETTER):
        try:
            info = await runtime.bus.js.stream_info(name)
        except NotFoundError:
            continue
        found.append(
            {
                "name": name,
                "messages": info.state.messages,
                "last_seq": info.state.last_seq,
                "sources": [
                    {"name": s.name, "lag": s.lag, "active_ms": _ms(s.active)}
                    for s in info.sources or []
                ],
            }
        )
    return found


def _ms(active: Any) -> float | None:
    """nats-py reports a source's last activity in nanoseconds; people read milliseconds."""
    return None if active is None else float(active) / 1e6
