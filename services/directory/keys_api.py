"""The organisation's keys as its node's administrator sees and changes them (the keys page):
each key published in the directory with its validity and what this node holds of it, and a
rotation asked for from the page as ``relais node rotate-keys`` asks for it
(``rotation.request_rotation``), with or without revoking the old keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from services.directory import rotation, store
from shared import audit_trail, crypto
from shared.auth import Principal, Role, require
from shared.contracts.directory import KeyUse
from shared.errors import NotFound, Unavailable
from shared.service import ServiceContext, service_context

router = APIRouter()
Context = Annotated[ServiceContext, Depends(service_context("directory"))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
OVERLAP = timedelta(days=7)  # as ``relais node rotate-keys`` by default
KeyState = Literal["current", "next", "retired", "forgotten"]


class NodeKey(BaseModel):
    key_id: str = Field(description="the key's fingerprint: the start of its SHA-256")
    use: KeyUse
    valid_from: datetime | None = Field(description="as the directory publishes it")
    valid_until: datetime | None = Field(description="none: without end")
    published: bool = Field(description="whether the directory (this node's copy) has it")
    state: KeyState = Field(
        description="current: signs and is sealed for; next: made by a rotation, waiting for"
        " the hub to publish it; retired: replaced, its private half kept; forgotten: its"
        " private half destroyed"
    )


class NodeKeys(BaseModel):
    org_id: str
    keys: list[NodeKey]
    rotation_waiting: bool = Field(description="a rotation waits for the hub to publish it")


class RotationAsked(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    revoke_old: bool = Field(
        default=False,
        description="a key is believed stolen: the old keys end now (envelopes already on"
        " their way, signed with them, are refused), not after a week",
    )


def _folder(ctx: ServiceContext) -> crypto.KeyRing:
    if not isinstance(ctx.keys, crypto.KeyRing):
        raise Unavailable("this node's keys are not kept in a key folder")
    return ctx.keys


@router.get("/keys", summary="This organisation's keys: published validity and what the node holds")
async def node_keys(ctx: Context, _: Admin) -> NodeKeys:
    ring = _folder(ctx)
    held = crypto.held_states(ring.folder)
    async with ctx.pool.acquire() as conn:
        record = await store.get_organisation(conn, ctx.settings.org)
    published = {k.key_id: k for k in (record.keys if record else [])}
    keys = [
        NodeKey(
            key_id=k.key_id,
            use=k.use,
            valid_from=k.valid_from,
            valid_until=k.valid_until,
            published=True,
            state=held.get(k.key_id, "forgotten"),
        )
        for k in published.values()
    ]
    for kid, state in held.items():  # made here, not (or not yet) in the directory
        if kid not in published:
            use = KeyUse.SIGNING if kid in ring.current().verifying_keys() else KeyUse.ENCRYPTION
            keys.append(
                NodeKey(key_id=kid, use=use, valid_from=None, valid_until=None,
                        published=False, state=state)
            )  # fmt: skip
    order = {"next": 0, "current": 1, "retired": 2, "forgotten": 3}
    keys.sort(key=lambda k: (order[k.state], k.use.value, k.key_id))
    return NodeKeys(
        org_id=ctx.settings.org,
        keys=keys,
        rotation_waiting=any(k.state == "next" for k in keys),
    )


@router.post(
    "/keys/rotation",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Make new key pairs and have them published: a member node sends them to the hub"
    " (and signs with them once published), the hub publishes its own at once",
    responses={409: {"description": "the new keys are already published"}},
)
async def rotate_keys(asked: RotationAsked, ctx: Context, principal: Admin) -> NodeKeys:
    ring = _folder(ctx)
    if ctx.settings.is_hub:  # its record is the hub's own: published here, at once
        await rotation.rotate_on_the_hub(
            ctx,
            ring.folder,
            now=datetime.now(UTC),
            overlap=OVERLAP,
            revoke=asked.revoke_old,
            actor=audit_trail.actor_of(principal),
        )
        return await node_keys(ctx, principal)
    async with ctx.pool.acquire() as conn:
        if await store.get_organisation(conn, ctx.settings.org) is None:
            raise NotFound("this node's record is not in its directory yet", field="org_id")
        await rotation.request_rotation(
            conn,
            ring.folder,
            org=ctx.settings.org,
            hub_org=ctx.settings.hub_org,
            node_id=ctx.settings.node_id,
            now=datetime.now(UTC),
            overlap=OVERLAP,
            revoke=asked.revoke_old,
            actor=audit_trail.actor_of(principal),
        )
    return await node_keys(ctx, principal)
