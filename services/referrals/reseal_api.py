"""Re-sealing from the administrator's keys page: where the retained data keys stand (how
many are still sealed for an older key than the node's current one) and a run of a few batches
at a time (``reseal.py``), so that one request stays short; the page asks again until none is
left. Then the retired private keys destroyed, as ``relais node forget-retired-keys`` does,
refused while anything still needs them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from services.referrals import reseal, roster
from shared import audit_trail
from shared.auth import Principal, Role, require
from shared.crypto import KeyRing, key_id
from shared.errors import Unavailable
from shared.service import ServiceContext, service_context

router = APIRouter()
Context = Annotated[ServiceContext, Depends(service_context("referrals"))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
BATCHES_PER_REQUEST = 5


class ResealProgress(BaseModel):
    current_key: str = Field(description="the node's X25519 key the data keys are sealed for")
    resealed: int = Field(description="data keys sealed again by this request")
    left: int = Field(description="data keys still sealed for an older key")
    waiting: dict[str, int] = Field(description="of those, how many for each older key")
    unopenable: int = Field(description="of those, sealed for a key this node no longer holds")


def _answer(keys_id: str, progress: reseal.Progress) -> ResealProgress:
    return ResealProgress(
        current_key=keys_id,
        resealed=progress.resealed,
        left=progress.left,
        waiting=progress.waiting,
        unopenable=progress.unopenable,
    )


@router.get("/keys/reseal", summary="How many retained data keys are sealed for an older key")
async def reseal_progress(ctx: Context, _: Admin) -> ResealProgress:
    keys = ctx.node_keys()
    return _answer(key_id(keys.encryption_public), await reseal.progress(ctx.pool, keys))


@router.post(
    "/keys/reseal",
    summary="Seal the next retained data keys again for the node's current key (a few batches"
    " per request; audited)",
)
async def reseal_now(ctx: Context, principal: Admin) -> ResealProgress:
    keys = ctx.node_keys()
    done = await reseal.reseal(
        ctx.pool,
        keys,
        actor=audit_trail.actor_of(principal),
        batches=BATCHES_PER_REQUEST,
    )
    return _answer(key_id(keys.encryption_public), done)


class RetiredKeysForgotten(BaseModel):
    forgotten: list[str] = Field(description="the key ids whose private half was destroyed")


@router.post(
    "/keys/retired/forget",
    summary="Destroy the node's retired private keys, once nothing needs them (audited)",
    responses={
        409: {
            "description": "a retained data key is still sealed for a retired key (re-seal"
            " first), or the directory still publishes one as valid"
        }
    },
)
async def forget_retired_keys(ctx: Context, principal: Admin) -> RetiredKeysForgotten:
    if not isinstance(ctx.keys, KeyRing):
        raise Unavailable("this node's keys are not kept in a key folder")
    org = ctx.settings.org
    record = await roster.refresh(ctx, org)  # the directory's, now: not a copy kept a minute
    published = {k.key_id: k.valid_until for k in record.keys} if record else {}
    async with ctx.pool.acquire() as conn:
        forgotten = await reseal.forget_retired(
            conn,
            ctx.keys.folder,
            published,
            actor=audit_trail.actor_of(principal),
            org=org,
            now=datetime.now(UTC),
        )
    return RetiredKeysForgotten(forgotten=forgotten)
