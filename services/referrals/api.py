"""Referrals HTTP API (DESIGN.md §7): send, list, read, act; the person's data only through
the explicit, audited ``/payload`` read. A node holds only its own organisation's referrals,
so a referral of other organisations is simply not found (404), never shown."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from services.referrals import (
    attachments_api,
    domain,
    floods,
    forms,
    handlers,
    request_schemas,
    reseal_api,
    roster,
    store,
)
from shared.auth import Principal, Role, require
from shared.contracts.directory import CODE
from shared.contracts.referrals import (
    MESSAGE_MAX_CHARS,
    REFERRAL_ID,
    Box,
    Change,
    Consent,
    LegalBasis,
    MessageRefusal,
    Status,
    Urgency,
)
from shared.errors import Invalid
from shared.service import ServiceContext, service_context

router = APIRouter()
router.include_router(reseal_api.router)  # before /{referral_id}/{action}
Context = Annotated[ServiceContext, Depends(service_context("referrals"))]
CaseWorker = Annotated[Principal, Depends(require(*handlers.CASE_ROLES))]
Reader = Annotated[Principal, Depends(require(*handlers.CASE_ROLES, Role.AUDITOR))]
Anyone = Annotated[Principal, Depends(require())]
Admin = Annotated[Principal, Depends(require(Role.ADMIN, Role.AUDITOR))]
ReferralId = Annotated[str, Path(pattern=REFERRAL_ID, description="a referral's id (UUIDv7)")]


class HistoryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=request_schemas.add_history_reasons)

    change: Change
    status: Status | None
    at: datetime
    by_org: str
    by_actor: str | None
    reason: str | None
    has_note: bool = Field(description="a note was added; read it with the payload")
    applied: bool = Field(description="false: it arrived after a step that overrides it")
    link: str | None = Field(
        default=None,
        description="the referral this step points at: the new one (sent_again) or the "
        "earlier one (follows)",
    )


class ReferralOut(BaseModel):
    """A referral's metadata as this node holds it: never the person's data."""

    model_config = ConfigDict(json_schema_extra=request_schemas.add_refusal_reasons)

    referral_id: str
    box: Box
    from_org: str
    to_org: str
    category: str
    urgency: Urgency
    region: str | None
    legal_basis: LegalBasis
    consent: Consent | None
    consent_state: str
    status: Status
    status_at: datetime
    created_by: str | None
    created_at: datetime
    acknowledge_by: datetime
    answer_by: datetime
    refused_reason: str | None = Field(description="why the recipient's node refused it")
    closed_at: datetime | None
    payload_erased: bool
    updated_at: datetime
    follows: str | None = Field(
        default=None,
        description="the earlier referral this one was sent again from (the sender's record "
        "only: never told to the recipient)",
    )
    unread_messages: int = Field(
        default=0,
        description="messages of the other organisation nobody here has read yet (reading "
        "GET …/messages marks them read)",
    )


class ReferralDetail(ReferralOut):
    history: list[HistoryOut]
    allowed_actions: list[domain.Action]


class Page(BaseModel):
    items: list[ReferralOut]
    next: str | None = Field(
        description="opaque: pass as ?after= for the next page (none on the last page)"
    )


class Payload(BaseModel):
    referral_id: str
    payload: dict[str, Any]
    notes: list[dict[str, str]]


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(
        max_length=MESSAGE_MAX_CHARS,
        description=f"the message, at most {MESSAGE_MAX_CHARS} characters, not only spaces; "
        "sealed for the two organisations",
    )


class MessageOut(BaseModel):
    message_id: str
    by_org: str = Field(description="the author's organisation")
    by_role: str = Field(description="the author's role there (caseworker, focal_point)")
    at: datetime
    text: str | None = Field(description="none once the referral's data was erased")
    mine: bool = Field(description="written by this node's organisation")
    erased: bool
    refused_reason: MessageRefusal | None = Field(
        default=None,
        description="this node's message was refused by the other organisation's node (its "
        "signature did not verify there, or its signing key was unknown): not delivered",
    )


class Thread(BaseModel):
    referral_id: str
    messages: list[MessageOut] = Field(description="oldest first")
    unread: int = Field(description="how many were unread before this reading")
    may_write: bool = Field(
        description="a message may be written now (until the referral closed plus the "
        "conversation's grace period, while its data is not erased)"
    )
    max_chars: int


class Created(BaseModel):
    referral_id: str
    status: Status


class SuggestionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str = Field(pattern=CODE)
    city: str | None = Field(default=None, pattern=CODE)
    languages: list[str] = Field(default_factory=list, max_length=10)
    populations: list[str] = Field(default_factory=list, max_length=10)
    age: int | None = Field(default=None, ge=0, le=120)
    sex: str | None = Field(default=None, pattern="^(female|male)$")
    urgency: Urgency = Urgency.ROUTINE
    limit: int = Field(default=20, ge=1, le=100)


class CategoryForm(BaseModel):
    category: str
    fields: list[forms.FieldSpec]


def _out(referral: store.Referral) -> dict[str, Any]:
    header = referral.header
    return {
        "referral_id": referral.referral_id,
        "box": referral.box,
        "from_org": header.from_org,
        "to_org": header.to_org,
        "category": header.category,
        "urgency": header.urgency,
        "region": header.region,
        "legal_basis": header.legal_basis,
        "consent": header.consent,
        "consent_state": referral.consent_state,
        "status": referral.status,
        "status_at": referral.status_at,
        "created_by": referral.created_by,
        "created_at": header.created_at,
        "acknowledge_by": header.acknowledge_by,
        "answer_by": header.answer_by,
        "refused_reason": referral.refused_reason,
        "closed_at": referral.closed_at,
        "payload_erased": referral.sealed_key is None,
        "updated_at": referral.updated_at,
        "follows": referral.follows,
        "unread_messages": referral.unread_messages,
    }


class FloodIncident(BaseModel):
    """One organisation sent this node more refused envelopes than its budget: the rest were
    set aside as this incident (no dead letter each); the hub was told."""

    incident_id: str
    sender: str
    opened_at: datetime
    last_at: datetime
    refused: int


@router.get(
    "/incidents",
    summary="Floods of refused envelopes from one sender, each parked as one incident",
)
async def list_incidents(ctx: Context, _: Admin) -> list[FloodIncident]:
    async with ctx.pool.acquire() as conn:
        return [FloodIncident.model_validate(row) for row in await floods.incidents(conn)]


@router.get("/categories", summary="The payload fields each category allows (minimum data)")
async def categories(_: Anyone) -> list[CategoryForm]:
    return [CategoryForm(category=c, fields=f.fields) for c, f in forms.forms().items()]


@router.get("/reasons", summary="Reason and outcome codes of the steps, with their labels")
async def reasons(_: Anyone) -> dict[str, dict[str, forms.Labels]]:
    return forms.reasons()


@router.post("/suggestions", summary="Organisations to refer to, ranked, with their reasons")
async def suggestions(body: SuggestionsIn, ctx: Context, _: CaseWorker) -> list[dict[str, Any]]:
    return await roster.suggestions(ctx, body.model_dump(exclude_none=True))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Send a referral (sealed for the recipient; the same Idempotency-Key returns the "
    "same referral)",
)
async def create(
    body: handlers.NewReferral,
    ctx: Context,
    principal: CaseWorker,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Created:
    referral = await handlers.create(ctx, principal, body, idempotency_key)
    return Created(referral_id=referral.referral_id, status=referral.status)


@router.get("", summary="The inbox or outbox, newest first (stable while referrals change)")
async def list_referrals(
    ctx: Context,
    principal: Reader,
    box: Box | None = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    urgency: Urgency | None = None,
    category: Annotated[str | None, Query(pattern=CODE)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(max_length=100)] = None,
) -> Page:
    handlers.check_caller(ctx, principal)
    filters = store.Filters(
        box=box,
        status=status_,
        urgency=urgency,
        category=category,
        limit=limit,
        before=_cursor(after),
    )
    async with ctx.pool.acquire() as conn:
        found = await store.search(conn, filters)
    last = found[-1] if len(found) == limit else None
    cursor = None if last is None else cursor_of(last.seq)
    return Page(items=[ReferralOut(**_out(r)) for r in found], next=cursor)


# A page ends at a referral's seq (creation order, never changed by a step): the next page
# starts below it, so paging while referrals move neither skips nor repeats one. Opaque to
# clients, and versioned, so that the order may change again without misreading old cursors.
_CURSOR_PREFIX = "s1:"


def cursor_of(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def _cursor(after: str | None) -> int | None:
    if after is None or after == "":
        return None
    try:
        text = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        seq = int(text.removeprefix(_CURSOR_PREFIX))
        if seq < 1:
            raise ValueError(seq)
        return seq
    except (ValueError, UnicodeDecodeError):
        raise Invalid("not a cursor this API gave", field="after") from None


@router.get("/{referral_id}", summary="One referral, its history and what may be done now")
async def get_referral(referral_id: ReferralId, ctx: Context, principal: Reader) -> ReferralDetail:
    handlers.check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn:
        referral = await handlers.load(conn, referral_id)
        history = await store.history(conn, referral_id)
    actions = (
        domain.allowed_actions(referral.status, referral.side)
        if principal.has(*handlers.CASE_ROLES)
        else []
    )
    return ReferralDetail(
        **_out(referral),
        history=[
            HistoryOut(
                change=h.change,
                status=h.status,
                at=h.at,
                by_org=h.by_org,
                by_actor=h.by_actor,
                reason=h.reason,
                has_note=h.sealed_note is not None,
                applied=h.applied,
                link=h.link,
            )
            for h in history
        ],
        allowed_actions=actions,
    )


@router.get(
    "/{referral_id}/payload",
    summary="Read the person's data (decrypted on this node; every read is audited)",
)
async def read_payload(referral_id: ReferralId, ctx: Context, principal: CaseWorker) -> Payload:
    return Payload(**await handlers.read_payload(ctx, principal, referral_id))


@router.get(
    "/{referral_id}/suggestions",
    summary="Other organisations for the same need (after an expiry or a decline)",
)
async def other_suggestions(
    referral_id: ReferralId, ctx: Context, principal: CaseWorker
) -> list[dict[str, Any]]:
    handlers.check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn:
        referral = await handlers.load(conn, referral_id)
    request = {"category": referral.header.category, "urgency": referral.header.urgency.value}
    found = await roster.suggestions(ctx, request)
    return [s for s in found if s.get("org_id") != referral.other_org]


@router.post(
    "/{referral_id}/revoke-consent",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="The person withdrew consent: the recipient destroys its copy of the data key",
)
async def revoke_consent(referral_id: ReferralId, ctx: Context, principal: CaseWorker) -> None:
    await handlers.revoke_consent(ctx, principal, referral_id)


@router.get(
    "/{referral_id}/messages",
    summary="The conversation between the two organisations (decrypted on this node; every "
    "read is audited and marks the thread read)",
)
async def read_messages(referral_id: ReferralId, ctx: Context, principal: CaseWorker) -> Thread:
    return Thread(**await handlers.read_messages(ctx, principal, referral_id))


@router.post(
    "/{referral_id}/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Write a message to the other organisation (sealed, signed, sent through the "
    "network; it waits while their node is away)",
    responses={409: {"description": "the conversation ended, or the referral's data is erased"}},
)
async def write_message(
    referral_id: ReferralId, body: MessageIn, ctx: Context, principal: CaseWorker
) -> MessageOut:
    return MessageOut(**await handlers.write_message(ctx, principal, referral_id, body.text))


# Before the step route: ``/{referral_id}/{action}`` would take ``…/attachments``.
router.include_router(attachments_api.router)


@router.post(
    "/{referral_id}/{action}",
    summary="A step: accept, decline, start, complete, close (the recipient) or withdraw (the "
    "sender)",
)
async def act(
    referral_id: ReferralId,
    action: domain.Action,
    ctx: Context,
    principal: CaseWorker,
    body: handlers.StepIn | None = None,
) -> ReferralDetail:
    await handlers.act(ctx, principal, referral_id, action, body or handlers.StepIn())
    return await get_referral(referral_id, ctx, principal)
