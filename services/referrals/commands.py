"""The NATS ingress for member systems (``relais.cmd.referrals.<action>`` on their node's
NATS): the same use cases and rules as the HTTP API, authenticated by the same
organisation API tokens (a ``token`` field), answering with the result or a typed error."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.referrals import api, attachments_api, domain, handlers, request_schemas
from shared import asyncapi
from shared.auth import Principal, Role
from shared.auth import domain as auth_domain
from shared.auth import store as auth_store
from shared.bus import Responder
from shared.contracts.referrals import MESSAGE_MAX_CHARS, REFERRAL_ID, Box, Status
from shared.errors import Forbidden, Invalid, Unauthenticated
from shared.service import ServiceContext

PREFIX = "relais.cmd.referrals"


class Create(handlers.NewReferral):
    model_config = ConfigDict(extra="forbid", json_schema_extra=request_schemas.add_payload_forms)
    token: str = Field(min_length=1, max_length=200)
    idempotency_key: str | None = Field(default=None, max_length=200)


class OnOne(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)
    referral_id: str = Field(pattern=REFERRAL_ID)


class Act(OnOne):
    model_config = ConfigDict(extra="forbid", json_schema_extra=request_schemas.add_reason_rules)
    action: domain.Action
    reason: str | None = None
    note: str | None = Field(default=None, max_length=2000)


class Message(OnOne):
    text: str = Field(max_length=MESSAGE_MAX_CHARS)


# A NATS message is at most 1 MiB (the node's max_payload): a file crosses the NATS commands
# as base64 in JSON up to this size; larger ones are for HTTP (``POST …/attachments``).
NATS_FILE_BYTES = 512 * 1024


class Attach(OnOne):
    filename: str = Field(min_length=1, max_length=200)
    content_type: str | None = Field(default=None, max_length=100, description="as declared")
    content: str = Field(
        max_length=(NATS_FILE_BYTES * 4) // 3 + 4,
        description=f"the file's bytes, base64; at most {NATS_FILE_BYTES} bytes over NATS "
        "(larger files: the HTTP API)",
    )


class OnFile(OnOne):
    attachment_id: str = Field(pattern=REFERRAL_ID)


class FileContent(attachments_api.AttachmentOut):
    content: str = Field(description="the file's bytes, base64")


class ListBox(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)
    box: Box | None = None
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=200)
    after: str | None = Field(default=None, max_length=100, description="the previous page's next")


async def _principal(ctx: ServiceContext, token: str, *roles: Role) -> Principal:
    grant = await auth_store.grant_of(ctx.pool, token)
    if grant is None:
        raise Unauthenticated("invalid, expired or revoked token", field="token")
    if ctx.throttle is not None:  # the token's budget, the same as over HTTP: a typed 429
        await ctx.throttle.check_token(str(grant.token_id))
    principal = auth_domain.principal_for(grant, ctx.settings.org)
    if not principal.has(*roles):
        raise Forbidden(f"this needs one of the roles: {', '.join(sorted(roles))}")
    return principal


for _action, _request, _reply, _summary in (
    (
        "create",
        Create,
        api.ReferralDetail,
        "Send a referral (same rules as POST /api/v1/referrals)",
    ),
    ("get", OnOne, api.ReferralDetail, "One referral, its history and the actions allowed now"),
    ("act", Act, api.ReferralDetail, "A step: accept, decline, start, complete, close, withdraw"),
    ("payload", OnOne, api.Payload, "Read the person's data (decrypted here; audited)"),
    (
        "revoke-consent",
        OnOne,
        api.ReferralDetail,
        "The person withdrew consent: the recipient destroys its copy of the data key",
    ),
    ("list", ListBox, api.Page, "The inbox or outbox, newest first, paged with after"),
    (
        "messages",
        OnOne,
        api.Thread,
        "The conversation with the other organisation (decrypted here; audited; marks it read)",
    ),
    ("message", Message, api.MessageOut, "Write a message to the other organisation"),
    (
        "attachments",
        OnOne,
        attachments_api.Attachments,
        "A referral's files and their state (names decrypted here; audited)",
    ),
    (
        "attach",
        Attach,
        attachments_api.AttachmentOut,
        f"Attach a file (base64, at most {NATS_FILE_BYTES} bytes here; larger over HTTP)",
    ),
    (
        "attachment",
        OnFile,
        FileContent,
        f"Download a verified file (base64; at most {NATS_FILE_BYTES} bytes here; audited)",
    ),
):
    asyncapi.command(f"{PREFIX}.{_action}", _request, _reply, _summary)


def commands(ctx: ServiceContext) -> dict[str, Responder]:
    async def create(request: dict[str, Any]) -> dict[str, Any]:
        body = Create.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        new = handlers.NewReferral.model_validate(
            body.model_dump(exclude={"token", "idempotency_key"})
        )
        referral = await handlers.create(ctx, principal, new, body.idempotency_key)
        return await _detail(referral.referral_id, principal)

    async def get(request: dict[str, Any]) -> dict[str, Any]:
        body = OnOne.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES, Role.AUDITOR)
        return await _detail(body.referral_id, principal)

    async def act(request: dict[str, Any]) -> dict[str, Any]:
        body = Act.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        step = handlers.StepIn(reason=body.reason, note=body.note)
        await handlers.act(ctx, principal, body.referral_id, body.action, step)
        return await _detail(body.referral_id, principal)

    async def payload(request: dict[str, Any]) -> dict[str, Any]:
        body = OnOne.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        return await handlers.read_payload(ctx, principal, body.referral_id)

    async def messages(request: dict[str, Any]) -> dict[str, Any]:
        body = OnOne.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        thread = api.Thread(**await handlers.read_messages(ctx, principal, body.referral_id))
        return thread.model_dump(mode="json")

    async def message(request: dict[str, Any]) -> dict[str, Any]:
        body = Message.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        written = await handlers.write_message(ctx, principal, body.referral_id, body.text)
        return api.MessageOut(**written).model_dump(mode="json")

    async def attachments(request: dict[str, Any]) -> dict[str, Any]:
        body = OnOne.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        found = await handlers.list_attachments(ctx, principal, body.referral_id)
        return attachments_api.Attachments(**found).model_dump(mode="json")

    async def attach(request: dict[str, Any]) -> dict[str, Any]:
        body = Attach.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        try:
            content = base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("the file's content is not base64", field="content") from None
        written = await handlers.attach(
            ctx,
            principal,
            body.referral_id,
            content,
            filename=body.filename,
            declared=body.content_type,
        )
        return attachments_api.AttachmentOut(**written).model_dump(mode="json")

    async def attachment(request: dict[str, Any]) -> dict[str, Any]:
        body = OnFile.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        plain, shown = await handlers.read_attachment(
            ctx, principal, body.referral_id, body.attachment_id
        )
        if len(plain) > NATS_FILE_BYTES:
            raise Invalid(
                f"the file is {len(plain)} bytes: over NATS at most {NATS_FILE_BYTES}; "
                "download it over HTTP",
                field="attachment_id",
            )
        reply = FileContent(**shown, content=base64.b64encode(plain).decode())
        return reply.model_dump(mode="json")

    async def revoke_consent(request: dict[str, Any]) -> dict[str, Any]:
        body = OnOne.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES)
        await handlers.revoke_consent(ctx, principal, body.referral_id)
        return await _detail(body.referral_id, principal)

    async def list_box(request: dict[str, Any]) -> dict[str, Any]:
        body = ListBox.model_validate(request)
        principal = await _principal(ctx, body.token, *handlers.CASE_ROLES, Role.AUDITOR)
        page = await api.list_referrals(
            ctx,
            principal,
            box=body.box,
            status_=body.status,
            limit=body.limit,
            after=body.after,
        )
        return page.model_dump(mode="json")

    async def _detail(referral_id: str, principal: Principal) -> dict[str, Any]:
        detail = await api.get_referral(referral_id, ctx, principal)
        return detail.model_dump(mode="json")

    return {
        f"{PREFIX}.create": create,
        f"{PREFIX}.get": get,
        f"{PREFIX}.act": act,
        f"{PREFIX}.payload": payload,
        f"{PREFIX}.revoke-consent": revoke_consent,
        f"{PREFIX}.list": list_box,
        f"{PREFIX}.messages": messages,
        f"{PREFIX}.message": message,
        f"{PREFIX}.attachments": attachments,
        f"{PREFIX}.attach": attach,
        f"{PREFIX}.attachment": attachment,
    }
