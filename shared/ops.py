"""The node's own operations API (``/api/v1/node``): what an administrator needs to see when
events do not flow — the streams and their consumers' lag, the outbox tables' unsent rows, and
the messages consumers gave up on.

``GET /status`` is what ``relais status`` reads: one answer per node with everything the node
itself knows. A stream that copies another (``INBOX`` from the hub's ``TO_<org>``; on the hub
``FROM_<org>`` from a node's ``OUTBOX``) names, in ``last_sourced``, the origin's sequence of
the last message it copied: the origin's ``last_seq`` minus that is what still waits to cross.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared import operator_api
from shared.auth import Principal, Role, require
from shared.federation import DEADLETTER, INBOX, LOCAL, OUTBOX, ROUTER
from shared.runtime import NodeRuntime

router = APIRouter()
# The dead letters (listed, shown, redelivered, discarded) and the outbox replay.
router.include_router(operator_api.router)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
NODE_STREAMS = (OUTBOX, INBOX, LOCAL, DEADLETTER)
SOURCE_HEADER = "Nats-Stream-Source"


def _runtime(request: Request) -> NodeRuntime:
    runtime: NodeRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[NodeRuntime, Depends(_runtime)]


@router.get(
    "/streams",
    summary="This node's streams (on the hub also FROM_*, ROUTER, TO_*): messages held,"
    " sources and how far each copied, consumers and their lag",
)
async def streams(runtime: Runtime, _: Admin) -> list[dict[str, Any]]:
    assert runtime.bus is not None
    return await all_streams(runtime)


async def all_streams(runtime: NodeRuntime) -> list[dict[str, Any]]:
    """The node's streams; on the hub also each member's ``FROM_``/``TO_``, which live in the
    member's own NATS account (found from ``ROUTER``'s sources, which name every member)."""
    assert runtime.bus is not None
    found = await describe_streams(runtime.bus.js)
    if runtime.settings.is_hub:
        for api in await member_apis(runtime.bus.js):
            found += await describe_streams(runtime.bus.nc.jetstream(prefix=api, timeout=5))
    return found


async def member_apis(js: JetStreamContext) -> list[str]:
    """The JetStream APIs of the members' accounts that ``ROUTER`` sources from."""
    try:
        router = await js.stream_info(ROUTER)
    except NotFoundError:  # a hub that has not admitted anyone yet
        return []
    apis = {s.external.api for s in router.config.sources or [] if s.external and s.external.api}
    return sorted(apis)


@router.get("/status", summary="What this node knows of its own flow, for `relais status`")
async def status(runtime: Runtime, _: Admin) -> dict[str, Any]:
    assert runtime.bus is not None
    settings = runtime.settings
    described = await all_streams(runtime)
    letters = next((s["messages"] for s in described if s["name"] == DEADLETTER), 0)
    return {
        "node": settings.node_id,
        "org": settings.org,
        "role": settings.role.value,
        "nats_connected": runtime.bus.connected,
        "streams": described,
        "outbox_unsent": await outbox_unsent(runtime),
        "dead_letters": letters,
    }


async def describe_streams(js: JetStreamContext) -> list[dict[str, Any]]:
    """Every stream of the node's JetStream domain, the node's own four first."""
    names = [s.config.name for s in await js.streams_info() if s.config.name]
    ordered = [n for n in NODE_STREAMS if n in names] + sorted(
        n for n in names if n not in NODE_STREAMS
    )
    found = []
    for name in ordered:
        try:
            info = await js.stream_info(name)
        except NotFoundError:  # deleted between the listing and now
            continue
        sources = info.sources or []
        found.append(
            {
                "name": name,
                "messages": info.state.messages,
                "first_seq": info.state.first_seq,
                "last_seq": info.state.last_seq,
                "sources": [
                    {"name": s.name, "lag": s.lag, "active_ms": _ms(s.active)} for s in sources
                ],
                "last_sourced": await last_sourced(js, name, info.state.last_seq)
                if sources
                else None,
                "consumers": [] if name == DEADLETTER else await _consumers(js, name),
            }
        )
    return found


async def last_sourced(
    js: JetStreamContext, stream: str, last_seq: int, *, look_back: int = 20
) -> dict[str, Any] | None:
    """The origin stream and sequence of ``stream``'s last message, if it was copied.

    The last message may have been deleted (a purge by subject): the ones before it, up to
    ``look_back`` of them, are tried in turn."""
    for seq in range(last_seq, max(last_seq - look_back, 0), -1):
        try:
            message = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        return parse_source((message.headers or {}).get(SOURCE_HEADER))
    return None


def parse_source(header: str | None) -> dict[str, Any] | None:
    """``TO_amal:bTMUkJQk 11 > > relais.net....`` (origin, a hash of its domain, its sequence)."""
    parts = (header or "").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return {"stream": parts[0].split(":")[0], "seq": int(parts[1])}


async def _consumers(js: JetStreamContext, stream: str) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "pending": c.num_pending or 0,  # in the stream, not delivered yet
            "ack_pending": c.num_ack_pending or 0,  # delivered, not acknowledged yet
            "redelivered": c.num_redelivered or 0,
            "delivered_seq": c.delivered.stream_seq if c.delivered else None,
        }
        for c in sorted(await js.consumers_info(stream), key=lambda c: c.name)
    ]


async def outbox_unsent(runtime: NodeRuntime) -> dict[str, int | None]:
    """Per service, events written to its outbox table and not yet acknowledged by NATS
    (``None``: its database did not answer)."""
    counts: dict[str, int | None] = {}
    for name, context in runtime.contexts.items():
        try:
            has_outbox = await context.pool.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", f"{name}.outbox", timeout=2
            )
            if has_outbox:
                counts[name] = await context.pool.fetchval(
                    f"SELECT count(*) FROM {name}.outbox WHERE sent_at IS NULL", timeout=2
                )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            counts[name] = None
    return counts


def _ms(active: Any) -> float | None:
    """nats-py reports a source's last activity in nanoseconds; people read milliseconds."""
    return None if active is None else float(active) / 1e6
