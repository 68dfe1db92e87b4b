"""The documents of a referral over HTTP: attach a file (the raw bytes as the body, its name in
``Content-Disposition``), list a referral's files, download one (as an attachment, with its
sniffed type and ``nosniff``: never rendered inline). Included by ``api`` before its step
route, whose ``/{referral_id}/{action}`` would otherwise take ``…/attachments``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.referrals import handlers
from shared.auth import Principal, require
from shared.contracts.referrals import REFERRAL_ID, AttachmentRefusal, AttachmentState
from shared.service import ServiceContext, context_of

router = APIRouter()
Context = Annotated[ServiceContext, Depends(context_of("referrals"))]
CaseWorker = Annotated[Principal, Depends(require(*handlers.CASE_ROLES))]
ReferralId = Annotated[str, Path(pattern=REFERRAL_ID, description="a referral's id (UUIDv7)")]
AttachmentId = Annotated[str, Path(pattern=REFERRAL_ID, description="a file's id (UUIDv7)")]
_EXTENDED = re.compile(r"filename\*\s*=\s*UTF-8''([^;\s]+)", re.IGNORECASE)
_PLAIN = re.compile(r'filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;\s"]+)', re.IGNORECASE)


class AttachmentOut(BaseModel):
    attachment_id: str
    by_org: str = Field(description="the organisation that attached it")
    by_role: str = Field(description="the author's role there (caseworker, focal_point)")
    at: datetime
    filename: str | None = Field(description="none once erased or refused")
    content_type: str | None = Field(description="the type its bytes were sniffed as")
    size: int
    sha256: str | None = Field(description="of the file's bytes, signed by the writer's node")
    state: AttachmentState = Field(
        description="on_its_way (not yet verified at the other node), arrived (every chunk, "
        "the digest and its signature verified), refused (parked: never offered), erased"
    )
    refused_reason: AttachmentRefusal | None
    mine: bool = Field(description="attached by this node's organisation")


class Attachments(BaseModel):
    referral_id: str
    attachments: list[AttachmentOut] = Field(description="oldest first")
    may_attach: bool
    max_bytes: int
    types: list[str] = Field(description="the types this node accepts, told by content")


def filename_of(disposition: str | None) -> str | None:
    """The file's name from a ``Content-Disposition`` header (RFC 6266: ``filename*`` in UTF-8
    first, then ``filename``)."""
    if not disposition:
        return None
    extended = _EXTENDED.search(disposition)
    if extended:
        return unquote(extended.group(1), errors="strict")
    plain = _PLAIN.search(disposition)
    if plain:
        return plain.group(1) if plain.group(1) is not None else plain.group(2)
    return None


@router.post(
    "/{referral_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    summary="Attach a file for the other organisation: the body is the file's bytes, "
    "`Content-Disposition: attachment; filename*=UTF-8''<name>` names it, `Content-Type` may "
    "declare its type (it must match what its content is). Sealed here, sent in chunks; it "
    "waits while the hub or their node is away.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        "parameters": [
            {
                "name": "Content-Disposition",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "attachment; filename*=UTF-8''<percent-encoded name>",
            }
        ],
    },
    responses={
        409: {"description": "the conversation ended, or the referral's data is erased"},
        422: {"description": "empty, too large, a type not allowed, or not what it declares"},
    },
)
async def attach(
    referral_id: ReferralId, request: Request, ctx: Context, principal: CaseWorker
) -> AttachmentOut:
    content = await request.body()
    try:
        name = filename_of(request.headers.get("content-disposition"))
    except UnicodeDecodeError:
        name = None
    written = await handlers.attach(
        ctx,
        principal,
        referral_id,
        content,
        filename=name,
        declared=request.headers.get("content-type"),
    )
    return AttachmentOut(**written)


@router.get(
    "/{referral_id}/attachments",
    summary="A referral's files and their state (names decrypted on this node; audited)",
)
async def list_attachments(
    referral_id: ReferralId, ctx: Context, principal: CaseWorker
) -> Attachments:
    return Attachments(**await handlers.list_attachments(ctx, principal, referral_id))


@router.get(
    "/{referral_id}/attachments/{attachment_id}/content",
    summary="Download a file (decrypted and verified on this node; every download audited), "
    "as an attachment with its sniffed type",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"},
        409: {"description": "the file has not arrived, was refused or erased"},
    },
)
async def download(
    referral_id: ReferralId,
    attachment_id: AttachmentId,
    ctx: Context,
    principal: CaseWorker,
) -> Response:
    plain, shown = await handlers.read_attachment(ctx, principal, referral_id, attachment_id)
    return Response(content=plain, media_type=str(shown["content_type"]), headers=_safe(shown))


def _safe(shown: dict[str, Any]) -> dict[str, str]:
    name = str(shown["filename"])
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return {
        "Content-Disposition": f'attachment; filename="{ascii_name}"; '
        f"filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
