"""The documents of a referral: a file attached at either organisation is sealed under a key
of its own, kept sealed here and sent, as an announcement and chunks, to the other node through
the outbox (it waits there while the hub or that node is away); the other node keeps each
chunk once, and offers the file only once every chunk, the final tag, the digest and its
signature verified, or parks it as refused and tells the writer's node why."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

from services.referrals import attachment_store, domain, file_seal, file_types, roster, store
from services.referrals.attachment_store import Attachment
from services.referrals.handlers.common import (
    SERVICE,
    actor_of,
    applying_once,
    audit,
    changed,
    check_caller,
    load,
)
from services.referrals.handlers.messages import WITHDRAWN, author_role, conversation_grace
from shared import audit_trail
from shared.auth import Principal
from shared.bus import Delivery
from shared.contracts.audit import Outcome
from shared.contracts.directory import KeyUse, OrganisationPublished
from shared.contracts.referrals import (
    AttachmentRefusal,
    AttachmentState,
    ReferralAttached,
    ReferralAttachmentChecked,
    ReferralChunk,
)
from shared.crypto import key_id, verify
from shared.db import Connection
from shared.errors import Conflict, Forbidden, NotFound, PermanentFailure
from shared.events import CloudEvent, new_event_id
from shared.service import ServiceContext


async def attach(
    ctx: ServiceContext,
    principal: Principal,
    referral_id: str,
    content: bytes,
    *,
    filename: str | None,
    declared: str | None,
) -> dict[str, Any]:
    """A person's file on a referral of their organisation: checked (size, type by its bytes),
    sealed, kept here and sent in chunks to the other organisation's node."""
    check_caller(ctx, principal)
    name = file_types.clean_filename(filename)
    kind = file_types.check_file(
        content,
        declared=declared,
        allowed=ctx.settings.allowed_attachment_types,
        max_mb=ctx.settings.attachment_max_mb,
    )
    async with ctx.pool.acquire() as conn:
        referral = await load(conn, referral_id)
    other = await roster.organisation(ctx, referral.other_org)
    if other is None:
        raise Conflict(f"{referral.other_org} is not in this node's directory", field="file")
    keys = ctx.node_keys()
    org = ctx.settings.org
    attachment_id = new_event_id()
    sealed = await asyncio.to_thread(file_seal.seal_file, content, attachment_id=attachment_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        referral = await load(conn, referral_id, for_update=True)
        now = await store.now(conn)
        domain.check_conversation_open(referral.closed_at, now, conversation_grace(ctx))
        if referral.consent_state in WITHDRAWN or referral.sealed_key is None:
            raise Conflict("consent was withdrawn or the data erased: no file may be added")
        their_key = roster.current_key(other, KeyUse.ENCRYPTION, now)
        signer, digest_signature = keys.sign(
            file_seal.digest_document(
                referral_id=referral_id,
                attachment_id=attachment_id,
                by_org=org,
                sha256=sealed.sha256,
                size=len(content),
            )
        )
        meta = file_seal.seal_meta(
            sealed.key,
            {
                "filename": name,
                "content_type": kind,
                "sha256": sealed.sha256,
                "digest_signature": digest_signature,
            },
            referral_id=referral_id,
            attachment_id=attachment_id,
            by_org=org,
        )
        role = author_role(principal)
        draft = ReferralAttached(
            referral_id=referral_id,
            attachment_id=attachment_id,
            by_org=org,
            by_role=role,
            at=now,
            size=len(content),
            chunks=len(sealed.chunks),
            stream_header=base64.b64encode(sealed.header).decode(),
            sealed_meta=meta,
            sealed_key=file_seal.seal_key(sealed.key, their_key.public_key),
            key_id=their_key.key_id,
            sender_key_id=signer,
            signature="",
        )
        _, signature = keys.sign(draft.signed_part())
        told = draft.model_copy(update={"signature": signature})
        own_key = file_seal.seal_key(sealed.key, base64.b64encode(keys.encryption_public).decode())
        await attachment_store.add(
            conn,
            attachment_id=attachment_id,
            referral_id=referral_id,
            by_org=org,
            by_role=role,
            by_actor=principal.subject,
            at=now,
            size=len(content),
            chunks=len(sealed.chunks),
            stream_header=sealed.header,
            sealed_meta=meta,
            sealed_key=own_key,
            key_id=key_id(keys.encryption_public),
            sender_key_id=signer,
            signature=signature,
            state=AttachmentState.ON_ITS_WAY.value,
        )
        await attachment_store.add_chunks(
            conn, attachment_id, referral_id, list(enumerate(sealed.chunks))
        )
        await ctx.send(conn, told, to=referral.other_org, about=referral_id)
        for index, chunk in enumerate(sealed.chunks):
            piece = ReferralChunk(
                referral_id=referral_id,
                attachment_id=attachment_id,
                index=index,
                sealed=base64.b64encode(chunk).decode(),
            )
            await ctx.send(conn, piece, to=referral.other_org, about=referral_id)
        await audit(
            ctx,
            conn,
            actor_of(principal),
            "attachment_sent",
            referral_id,
            {"attachment_id": attachment_id, "sha256": sealed.sha256, "size": len(content)},
        )
    return {
        "attachment_id": attachment_id,
        "by_org": org,
        "by_role": role,
        "at": now,
        "filename": name,
        "content_type": kind,
        "size": len(content),
        "sha256": sealed.sha256,
        "state": AttachmentState.ON_ITS_WAY.value,
        "refused_reason": None,
        "mine": True,
    }


# -- at the other node --------------------------------------------------------------------


async def _sender(ctx: ServiceContext, delivery: Delivery, fallback: str) -> OrganisationPublished:
    record = await roster.organisation(ctx, delivery.sender or fallback)
    if record is None:  # its record has not reached this replica yet: retry
        raise LookupError(f"{delivery.sender} is not in this node's directory yet")
    return record


async def receive_attached(
    ctx: ServiceContext, event: CloudEvent, attached: ReferralAttached, delivery: Delivery
) -> None:
    """A file announced by the other node: its record kept once (on its way), checked against
    the writer's key, and verified at once if its chunks came first."""
    sender = await _sender(ctx, delivery, attached.by_org)
    refusal: AttachmentRefusal | None = None
    signing = roster.key_by_id(sender, attached.sender_key_id, KeyUse.SIGNING)
    if signing is None:
        refusal = AttachmentRefusal.UNKNOWN_SIGNING_KEY
    else:
        try:
            verify(attached.signed_part(), attached.signature, signing.public_key)
        except Forbidden:
            refusal = AttachmentRefusal.BAD_SIGNATURE
    async with applying_once(ctx, event, delivery, attached.referral_id) as applied:
        if applied is None:
            return
        conn, referral = applied
        if attached.by_org != delivery.sender:
            raise PermanentFailure(f"{delivery.sender} attached a file in another's name")
        # This node's key destroyed, or consent withdrawn here: keep nothing openable.
        erased = referral.sealed_key is None or referral.consent_state in WITHDRAWN
        added = await attachment_store.add(
            conn,
            attachment_id=attached.attachment_id,
            referral_id=referral.referral_id,
            by_org=attached.by_org,
            by_role=attached.by_role,
            by_actor=None,
            at=attached.at,
            size=attached.size,
            chunks=attached.chunks,
            stream_header=None if erased else base64.b64decode(attached.stream_header),
            sealed_meta=None if erased else attached.sealed_meta,
            sealed_key=None if erased else attached.sealed_key,
            key_id=attached.key_id,
            sender_key_id=attached.sender_key_id,
            signature=attached.signature,
            state=(AttachmentState.ERASED if erased else AttachmentState.ON_ITS_WAY).value,
        )
        if not added:
            return
        if erased:
            await attachment_store.erase(conn, [referral.referral_id])
            return
        if refusal is None and ctx.node_keys().encryption_key(attached.key_id) is None:
            refusal = AttachmentRefusal.NOT_OUR_KEY
        if refusal is None and attached.size > file_types.MIB * ctx.settings.attachment_max_mb:
            refusal = AttachmentRefusal.TOO_LARGE
        file = await attachment_store.get(conn, attached.attachment_id, for_update=True)
        assert file is not None  # just added, in this transaction
        if refusal is not None:
            await _refuse(ctx, conn, referral, file, refusal)
            return
        await _complete(ctx, conn, referral, file, signing.public_key if signing else "")


async def receive_chunk(
    ctx: ServiceContext, event: CloudEvent, chunk: ReferralChunk, delivery: Delivery
) -> None:
    """One chunk of a file, kept once; the last one to come completes the file."""
    sender = await _sender(ctx, delivery, "")
    async with applying_once(ctx, event, delivery, chunk.referral_id) as applied:
        if applied is None:
            return
        conn, referral = applied
        file = await attachment_store.get(conn, chunk.attachment_id, for_update=True)
        if file is not None and (
            file.state != AttachmentState.ON_ITS_WAY or file.referral_id != referral.referral_id
        ):
            return  # verified, refused or erased already: nothing more to keep
        try:
            sealed = base64.b64decode(chunk.sealed, validate=True)
        except ValueError:
            sealed = b""  # not base64: it cannot open, and says so when the file completes
        added = await attachment_store.add_chunks(
            conn, chunk.attachment_id, referral.referral_id, [(chunk.index, sealed)]
        )
        if added and file is not None:
            signing = roster.key_by_id(sender, file.sender_key_id, KeyUse.SIGNING)
            await _complete(ctx, conn, referral, file, signing.public_key if signing else "")


async def _complete(
    ctx: ServiceContext,
    conn: Connection,
    referral: store.Referral,
    file: Attachment,
    signing_public: str,
) -> None:
    """Once every chunk is here: verify the whole file, then offer it or refuse it."""
    if await attachment_store.chunk_count(conn, file.attachment_id) < file.chunks:
        return  # more to come (counted, not read: 40 chunks would read the file 40 times)
    kept = await attachment_store.sealed_chunks(conn, file.attachment_id)
    refusal = await asyncio.to_thread(_verify, ctx, referral, file, kept, signing_public)
    if refusal is not None:
        await _refuse(ctx, conn, referral, file, refusal)
        return
    now = await store.now(conn)
    await attachment_store.set_state(
        conn, file.attachment_id, AttachmentState.ARRIVED.value, at=now
    )
    await ctx.send(
        conn,
        ReferralAttachmentChecked(
            referral_id=referral.referral_id,
            attachment_id=file.attachment_id,
            state=AttachmentState.ARRIVED,
            at=now,
        ),
        to=referral.other_org,
        about=referral.referral_id,
    )
    updated = await load(conn, referral.referral_id)
    await changed(ctx, conn, updated, "attached", file.by_org, at=now)
    await audit(
        ctx,
        conn,
        audit_trail.Actor(file.by_org, "system:referrals"),
        "attachment_received",
        referral.referral_id,
        {"attachment_id": file.attachment_id, "size": file.size},
    )


def _verify(
    ctx: ServiceContext,
    referral: store.Referral,
    file: Attachment,
    kept: list[bytes],
    signing_public: str,
) -> AttachmentRefusal | None:
    """Why the file cannot be offered, or None when every check holds."""
    if len(kept) != file.chunks:
        return AttachmentRefusal.TAMPERED_CHUNK  # a chunk beyond the announced end
    if not signing_public:
        return AttachmentRefusal.UNKNOWN_SIGNING_KEY
    private = ctx.node_keys().encryption_key(file.key_id or "")
    if private is None or file.sealed_key is None or file.sealed_meta is None:
        return AttachmentRefusal.NOT_OUR_KEY
    try:
        key = file_seal.open_key(file.sealed_key, private)
        meta = file_seal.open_meta(
            key,
            file.sealed_meta,
            referral_id=referral.referral_id,
            attachment_id=file.attachment_id,
            by_org=file.by_org,
        )
        plain = file_seal.open_file(
            key, file.stream_header or b"", kept, attachment_id=file.attachment_id
        )
    except file_seal.Tampered:
        return AttachmentRefusal.TAMPERED_CHUNK
    digest = hashlib.sha256(plain).hexdigest()
    if digest != meta.get("sha256") or len(plain) != file.size:
        return AttachmentRefusal.DIGEST_MISMATCH
    signed = file_seal.digest_document(
        referral_id=referral.referral_id,
        attachment_id=file.attachment_id,
        by_org=file.by_org,
        sha256=digest,
        size=file.size,
    )
    try:
        verify(signed, str(meta.get("digest_signature") or ""), signing_public)
    except Forbidden:
        return AttachmentRefusal.BAD_SIGNATURE
    kind = file_types.sniff(plain)
    if kind is None or kind not in ctx.settings.allowed_attachment_types:
        return AttachmentRefusal.TYPE_NOT_ALLOWED
    if kind != meta.get("content_type"):
        return AttachmentRefusal.TYPE_NOT_ALLOWED
    return None


async def _refuse(
    ctx: ServiceContext,
    conn: Connection,
    referral: store.Referral,
    file: Attachment,
    reason: AttachmentRefusal,
) -> None:
    now = await store.now(conn)
    await attachment_store.park_refused(conn, file.attachment_id, reason.value, now)
    await ctx.send(
        conn,
        ReferralAttachmentChecked(
            referral_id=referral.referral_id,
            attachment_id=file.attachment_id,
            state=AttachmentState.REFUSED,
            reason=reason,
            at=now,
        ),
        to=referral.other_org,
        about=referral.referral_id,
    )
    await audit(
        ctx,
        conn,
        audit_trail.Actor(file.by_org, "system:referrals"),
        "attachment_refused",
        referral.referral_id,
        {"attachment_id": file.attachment_id, "reason": reason.value},
        Outcome.FAILED,
    )


async def record_check(
    ctx: ServiceContext,
    event: CloudEvent,
    checked: ReferralAttachmentChecked,
    delivery: Delivery,
) -> None:
    """At the writer's node: the other node verified the file, or refused it and why."""
    async with applying_once(ctx, event, delivery, checked.referral_id) as applied:
        if applied is None:
            return
        conn, referral = applied
        file = await attachment_store.get(conn, checked.attachment_id, for_update=True)
        if file is None or file.referral_id != referral.referral_id:
            raise PermanentFailure(f"{delivery.sender} checked a file this node did not send")
        if file.by_org != ctx.settings.org:
            raise PermanentFailure(f"{delivery.sender} checked a file it sent itself")
        if file.state != AttachmentState.ON_ITS_WAY:
            return  # erased here meanwhile, or told before
        await attachment_store.set_state(
            conn,
            file.attachment_id,
            checked.state.value,
            reason=checked.reason.value if checked.reason else None,
            at=checked.at,
        )
        await audit(
            ctx,
            conn,
            audit_trail.system(ctx.settings.org, SERVICE),
            "attachment_checked",
            referral.referral_id,
            {
                "attachment_id": file.attachment_id,
                "state": checked.state.value,
                "reason": checked.reason.value if checked.reason else None,
            },
            Outcome.OK if checked.state is AttachmentState.ARRIVED else Outcome.FAILED,
        )


# -- reading ------------------------------------------------------------------------------


def _file_key(ctx: ServiceContext, file: Attachment) -> bytes | None:
    if file.sealed_key is None:
        return None
    private = ctx.node_keys().encryption_key(file.key_id or "") or ctx.node_keys().encryption
    return file_seal.open_key(file.sealed_key, private)


def _offered(ctx: ServiceContext, file: Attachment) -> bool:
    """Whether this node offers the file's bytes: verified, or its own (kept as sent)."""
    if file.state == AttachmentState.ARRIVED:
        return True
    return file.by_org == ctx.settings.org and file.state == AttachmentState.ON_ITS_WAY


def _shown(ctx: ServiceContext, file: Attachment, meta: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "attachment_id": file.attachment_id,
        "by_org": file.by_org,
        "by_role": file.by_role,
        "at": file.at,
        "filename": meta.get("filename") if meta else None,
        "content_type": meta.get("content_type") if meta else None,
        "size": file.size,
        "sha256": meta.get("sha256") if meta else None,
        "state": file.state,
        "refused_reason": file.refused_reason,
        "mine": file.by_org == ctx.settings.org,
    }


async def list_attachments(
    ctx: ServiceContext, principal: Principal, referral_id: str
) -> dict[str, Any]:
    """A referral's files, oldest first: names and types decrypted here (the reading is
    audited), their bytes only through ``read_attachment``."""
    check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn, conn.transaction():
        referral = await load(conn, referral_id)
        files = await attachment_store.of_referral(conn, referral_id)
        shown = []
        for file in files:
            meta = None
            key = _file_key(ctx, file) if file.sealed_meta is not None else None
            if key is not None and file.sealed_meta is not None:
                meta = file_seal.open_meta(
                    key,
                    file.sealed_meta,
                    referral_id=referral_id,
                    attachment_id=file.attachment_id,
                    by_org=file.by_org,
                )
            shown.append(_shown(ctx, file, meta))
        if any(s["filename"] for s in shown):
            await audit(
                ctx,
                conn,
                actor_of(principal),
                "attachments_listed",
                referral_id,
                {"attachments": [(s["attachment_id"], s["filename"]) for s in shown]},
            )
        now = await store.now(conn)
    return {
        "referral_id": referral_id,
        "attachments": shown,
        "may_attach": referral.sealed_key is not None
        and referral.consent_state not in WITHDRAWN
        and domain.conversation_open(referral.closed_at, now, conversation_grace(ctx)),
        "max_bytes": int(ctx.settings.attachment_max_mb * file_types.MIB),
        "types": list(ctx.settings.allowed_attachment_types),
    }


async def read_attachment(
    ctx: ServiceContext, principal: Principal, referral_id: str, attachment_id: str
) -> tuple[bytes, dict[str, Any]]:
    """A file's bytes, decrypted and verified again here for a person of the organisation;
    the read is audited (refused too)."""
    check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await load(conn, referral_id)  # 404 unless a referral of this node
        file = await attachment_store.get(conn, attachment_id)
        if file is None or file.referral_id != referral_id:
            raise NotFound("no such file on this referral", field="attachment_id")
        key = _file_key(ctx, file) if _offered(ctx, file) else None
        if key is None or file.sealed_meta is None:
            await audit(
                ctx,
                conn,
                actor_of(principal),
                "attachment_read",
                referral_id,
                {"attachment_id": attachment_id},
                Outcome.REFUSED,
            )
            raise Conflict(
                f"the file cannot be read: it is {file.state.replace('_', ' ')}",
                field="attachment_id",
            )
        kept = await attachment_store.sealed_chunks(conn, attachment_id)
        meta = file_seal.open_meta(
            key,
            file.sealed_meta,
            referral_id=referral_id,
            attachment_id=attachment_id,
            by_org=file.by_org,
        )
        plain = await asyncio.to_thread(
            file_seal.open_file, key, file.stream_header or b"", kept, attachment_id=attachment_id
        )
        if hashlib.sha256(plain).hexdigest() != meta.get("sha256"):
            raise file_seal.Tampered("the file kept here does not match its digest")
        await audit(
            ctx,
            conn,
            actor_of(principal),
            "attachment_read",
            referral_id,
            {"attachment_id": attachment_id, "sha256": meta.get("sha256")},
        )
    return plain, _shown(ctx, file, meta)
