"""Audit HTTP API under ``/api/v1/audit``: the node's own log (its admin and auditor), its
verification and checkpoints; at the hub, the network log, every node's checkpoints, alerts and
the figures for advocacy (coordinators and auditors)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.audit import handlers, queries, store, verification
from services.audit.queries import Dimension, Filters, Format, Log, Order
from shared import audit_trail
from shared.auth import Principal, Role, require
from shared.auth.roles import NETWORK_FIGURE_READERS
from shared.contracts import audit_actions
from shared.contracts.audit import Outcome
from shared.contracts.directory import ORG_ID
from shared.errors import Invalid, NotFound
from shared.inputs import Moment
from shared.service import ServiceContext, service_context

router = APIRouter()
Context = Annotated[ServiceContext, Depends(service_context("audit"))]
OwnLog = Annotated[Principal, Depends(require(Role.ADMIN, Role.AUDITOR))]
NetworkLog = Annotated[Principal, Depends(require(Role.COORDINATOR, Role.AUDITOR))]
# The figures: exactly the roles the network page admits (shared/auth/roles.py).
FigureReader = Annotated[Principal, Depends(require(*NETWORK_FIGURE_READERS))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]

MEDIA = {Format.CSV: "text/csv; charset=utf-8", Format.NDJSON: "application/x-ndjson"}


def filters(
    since: Annotated[
        Moment | None, Query(alias="from", description="from this time (inclusive)")
    ] = None,
    until: Annotated[Moment | None, Query(alias="to", description="until (exclusive)")] = None,
    org: Annotated[str | None, Query(pattern=ORG_ID, description="organisation")] = None,
    actor: Annotated[
        str | None, Query(min_length=1, max_length=120, description="user:<name>, ...")
    ] = None,
    action: Annotated[
        str | None, Query(pattern=r"^[a-z_]+\.[a-z_]+$", description="e.g. referral.accepted")
    ] = None,
    object: Annotated[
        str | None, Query(min_length=1, max_length=200, description="e.g. referral:<id>")
    ] = None,
    outcome: Annotated[Outcome | None, Query(description="ok, refused or failed")] = None,
) -> Filters:
    if action is not None and not audit_actions.is_action(action):
        # A code no service records would find nothing and read as "no such record".
        raise Invalid(
            f"{action} is not an audit action (the codes: shared/contracts/audit_actions.py)",
            field="action",
        )
    where = Filters(since, until, org, actor, action, object, outcome and outcome.value)
    return where.checked()


Filtered = Annotated[Filters, Depends(filters)]
Cursor = Annotated[int | None, Query(ge=0, description="the next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=1000)]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: int | None


def _hub_only(ctx: ServiceContext) -> None:
    if not ctx.settings.is_hub:
        raise NotFound("the network log and its figures are kept at the hub")


@router.get("/records", summary="This node's audit log, filtered, a page at a time")
async def list_records(
    ctx: Context,
    _: OwnLog,
    where: Filtered,
    cursor: Cursor = None,
    limit: Limit = 100,
    order: Order = Order.ASC,
) -> Page:
    audit = await handlers.audit_of(ctx)
    async with audit.writer.acquire() as conn:
        items, next_cursor = await queries.page(conn, Log.OWN, where, order, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/actors", summary="The actors this node's log names (for a search's picker)")
async def list_actors(ctx: Context, _: OwnLog) -> list[str]:
    audit = await handlers.audit_of(ctx)
    async with audit.writer.acquire() as conn:
        return await queries.actors(conn)


async def _export(
    ctx: ServiceContext, principal: Principal, log: Log, where: Filters, fmt: Format
) -> StreamingResponse:
    audit = await handlers.audit_of(ctx)
    # The export is itself recorded, before a byte leaves: who took what, with which filters.
    await handlers.record_own(
        ctx,
        audit_trail.actor_of(principal),
        "audit.exported",
        f"audit:{log.value}",
        {"filters": where.as_json(), "format": fmt.value},
    )
    name = f"relais-audit-{log.value}-{ctx.settings.node_id}.{fmt.value}"
    return StreamingResponse(
        queries.export(audit.writer, log, where, fmt, ZoneInfo(ctx.settings.timezone)),
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/records/export",
    summary="This node's audit log as CSV or NDJSON, streamed (the export is itself recorded)",
    response_class=StreamingResponse,
)
async def export_records(
    ctx: Context, principal: OwnLog, where: Filtered, format: Format = Format.CSV
) -> StreamingResponse:
    return await _export(ctx, principal, Log.OWN, where, format)


@router.get(
    "/verification",
    summary="Recompute this node's chain and check it against its signed checkpoints",
)
async def verify_chain(ctx: Context, principal: OwnLog) -> dict[str, Any]:
    audit = await handlers.audit_of(ctx)
    keys = {} if ctx.keys is None else ctx.keys.verifying_keys()  # the retired ones too
    async with audit.writer.acquire() as conn:
        rows = await store.own_checkpoints(conn)
        points = verification.signed_checkpoints(
            rows, org=ctx.settings.org, node_id=ctx.settings.node_id, public_keys=keys
        )
        report = await verification.verify(conn, points)
    await handlers.record_own(
        ctx,
        audit_trail.actor_of(principal),
        "audit.verified",
        f"audit:{ctx.settings.node_id}",
        report.as_json(),
        Outcome.OK if report.ok else Outcome.FAILED,
    )
    return report.as_json()


class CheckpointOut(BaseModel):
    org: str
    node_id: str
    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str


@router.get("/checkpoints", summary="The checkpoints this node signed")
async def list_checkpoints(ctx: Context, _: OwnLog) -> list[CheckpointOut]:
    audit = await handlers.audit_of(ctx)
    async with audit.writer.acquire() as conn:
        rows = await store.own_checkpoints(conn)
    settings = ctx.settings
    return [
        CheckpointOut(org=settings.org, node_id=settings.node_id, **_checkpoint(r)) for r in rows
    ]


def _checkpoint(row: store.StoredCheckpoint) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "hash": row.hash,
        "at": row.at,
        "key_id": row.key_id,
        "signature": row.signature,
    }


@router.post(
    "/checkpoints",
    status_code=status.HTTP_201_CREATED,
    summary="Sign a checkpoint of the chain's head now and send it to the hub",
    responses={204: {"description": "the last checkpoint already covers the head"}},
)
async def make_checkpoint(ctx: Context, _: Admin) -> CheckpointOut | None:
    made = await handlers.make_checkpoint(ctx)
    if made is None:
        return None
    settings = ctx.settings
    return CheckpointOut(org=settings.org, node_id=settings.node_id, **_checkpoint(made))


# --- at the hub -----------------------------------------------------------------------------


@router.get("/network", summary="The network log (hub): metadata of what crossed the network")
async def list_network(
    ctx: Context,
    _: NetworkLog,
    where: Filtered,
    cursor: Cursor = None,
    limit: Limit = 100,
    order: Order = Order.ASC,
) -> Page:
    _hub_only(ctx)
    async with ctx.pool.acquire() as conn:
        items, next_cursor = await queries.page(conn, Log.NETWORK, where, order, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/network/export",
    summary="The network log as CSV or NDJSON, streamed (the export is itself recorded)",
    response_class=StreamingResponse,
)
async def export_network(
    ctx: Context, principal: NetworkLog, where: Filtered, format: Format = Format.CSV
) -> StreamingResponse:
    _hub_only(ctx)
    return await _export(ctx, principal, Log.NETWORK, where, format)


@router.get("/network/checkpoints", summary="Every node's checkpoints, as the hub keeps them")
async def list_node_checkpoints(
    ctx: Context,
    _: NetworkLog,
    org: Annotated[str | None, Query(pattern=ORG_ID)] = None,
) -> list[CheckpointOut]:
    _hub_only(ctx)
    async with ctx.pool.acquire() as conn:
        rows = await store.node_checkpoints(conn, org)
    return [CheckpointOut(org=r.org, node_id=r.node_id, **_checkpoint(r)) for r in rows]


class AlertOut(BaseModel):
    id: int
    at: datetime
    org: str
    kind: str
    detail: str


@router.get("/network/alerts", summary="Checkpoints the hub refused, newest first")
async def list_alerts(ctx: Context, _: NetworkLog, limit: Limit = 100) -> list[AlertOut]:
    _hub_only(ctx)
    async with ctx.pool.acquire() as conn:
        return [
            AlertOut.model_validate(dict(r.items())) for r in await store.list_alerts(conn, limit)
        ]


# Without `by`, the total of everything (`by=` with no value is not a list any client sends).
By = Annotated[
    list[Dimension] | None,
    Query(description="group by these, in this order; none: the total of everything"),
]
Since = Annotated[Moment | None, Query(alias="from")]
Until = Annotated[Moment | None, Query(alias="to")]


@router.get(
    "/figures/referrals",
    summary="Referrals by category, region, month (in the node's zone), urgency, outcome:"
    ' counts 1 to 4 "<5", and "x" for a count hidden so that none of those can be worked out'
    " from a total",
)
async def referral_figures(
    ctx: Context,
    _: FigureReader,
    by: By = None,
    since: Since = None,
    until: Until = None,
) -> list[dict[str, Any]]:
    _hub_only(ctx)
    async with ctx.pool.acquire() as conn:
        return await queries.referral_counts(
            conn, _distinct(by or []), since, until, ctx.settings.timezone
        )


@router.get("/figures/response-times", summary="Median hours to answer and to complete")
async def response_time_figures(
    ctx: Context,
    _: FigureReader,
    by: By = None,
    since: Since = None,
    until: Until = None,
) -> list[dict[str, Any]]:
    _hub_only(ctx)
    async with ctx.pool.acquire() as conn:
        return await queries.response_times(
            conn, _distinct(by or []), since, until, ctx.settings.timezone
        )


@router.get("/figures/overdue", summary="Overdue rates per receiving organisation")
async def overdue_figures(
    ctx: Context, _: FigureReader, since: Since = None, until: Until = None
) -> list[dict[str, Any]]:
    _hub_only(ctx)
    async with ctx.pool.acquire() as conn:
        return await queries.overdue_rates(conn, since, until, ctx.settings.timezone)


@router.get(
    "/figures/coverage",
    summary="Per region, the categories of service with an open provider (directory records)",
)
async def coverage_figures(ctx: Context, _: FigureReader) -> list[dict[str, Any]]:
    _hub_only(ctx)
    async with ctx.pool.acquire() as conn:
        return await queries.coverage(conn)


def _distinct(by: list[Dimension]) -> list[Dimension]:
    return list(dict.fromkeys(by))
