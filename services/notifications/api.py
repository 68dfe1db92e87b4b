"""Notifications HTTP API: a user's feed (and its live stream), preferences; the organisation
admin's rules, webhooks and delivery log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from services.notifications import domain, handlers, store
from services.notifications.domain import EMAIL_PATTERN, PHONE_PATTERN, Channel, Facts, Kind
from services.notifications.handlers import Notifier
from shared import zones
from shared.auth import Principal, Role, require
from shared.errors import Forbidden, NotFound
from shared.inputs import Flag, Moment
from shared.service import ServiceContext, service_context

router = APIRouter()
Context = Annotated[ServiceContext, Depends(service_context("notifications"))]
Anyone = Annotated[Principal, Depends(require())]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
KEEP_ALIVE = 15.0


def notifier(ctx: Context) -> Notifier:
    return handlers.notifier_of(ctx)


Running = Annotated[Notifier, Depends(notifier)]


def staff_member(principal: Principal) -> str:
    if principal.kind != "user":
        raise Forbidden("member systems have no feed or preferences; they use webhooks")
    return principal.subject


# --- the feed -------------------------------------------------------------------------------


class FeedItem(BaseModel):
    id: UUID
    kind: Kind
    title: str = Field(description="in the reader's language")
    facts: dict[str, Any]
    emergency: bool
    created_at: datetime
    read: bool


class Feed(BaseModel):
    unread: int
    items: list[FeedItem]


async def _language(conn: Any, n: Notifier, principal: Principal) -> str:
    preference = await store.preference(conn, principal.subject)
    if preference is not None and preference.language:
        return preference.language
    for member in await handlers.active_staff(n):
        if member.username == principal.subject:
            return member.language
    return "fr"


def _item(row: asyncpg.Record, n: Notifier, lang: str) -> FeedItem:
    kind = Kind(row["kind"])
    facts = Facts.model_validate(row["facts"])
    return FeedItem(
        id=row["id"],
        kind=kind,
        title=n.writer(lang).title(kind, facts),
        facts=row["facts"],
        emergency=row["emergency"],
        created_at=row["created_at"],
        read=row["read_at"] is not None,
    )


@router.get("/feed", summary="Your notifications, newest first, and how many are unread")
async def get_feed(
    n: Running,
    principal: Anyone,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: UUID | None = None,
    after: Annotated[
        UUID | None, Query(description="only the newer ones, oldest first (live updates)")
    ] = None,
    unread_only: bool = False,
) -> Feed:
    username = staff_member(principal)
    async with n.ctx.pool.acquire() as conn:
        lang = await _language(conn, n, principal)
        rows = await store.feed(
            conn, username, limit=limit, before=before, after=after, unread_only=unread_only
        )
        count = await store.unread(conn, username)
    return Feed(unread=count, items=[_item(r, n, lang) for r in rows])


class ReadMark(BaseModel):
    ids: list[UUID] | None = Field(default=None, description="these; all of yours if absent")


class Unread(BaseModel):
    unread: int


@router.post("/feed/read", summary="Mark notifications as read")
async def mark_read(mark: ReadMark, n: Running, principal: Anyone) -> Unread:
    username = staff_member(principal)
    async with n.ctx.pool.acquire() as conn, conn.transaction():
        await store.mark_read(conn, username, mark.ids)
        await store.wake(conn, store.FEED_CHANNEL, username)
        return Unread(unread=await store.unread(conn, username))


@router.get(
    "/stream",
    summary="Live updates of your feed (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(n: Running, principal: Anyone) -> StreamingResponse:
    """``event: unread`` with the count at once and on every change, ``event: notification``
    with each new item; a comment every 15 s keeps proxies from closing the stream."""
    username = staff_member(principal)

    async def events() -> AsyncIterator[str]:
        with n.live.watch(username) as changed:
            async with n.ctx.pool.acquire() as conn:
                lang = await _language(conn, n, principal)
                last = await store.newest_id(conn, username)
                count = await store.unread(conn, username)
            yield _event("unread", {"unread": count})
            while True:
                try:
                    await asyncio.wait_for(changed.wait(), KEEP_ALIVE)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                changed.clear()
                async with n.ctx.pool.acquire() as conn:
                    rows = await store.feed(conn, username, after=last, limit=200)
                    count = await store.unread(conn, username)
                for row in rows:
                    last = row["id"]
                    item = _item(row, n, lang)
                    yield _event("notification", item.model_dump(mode="json"), str(item.id))
                yield _event("unread", {"unread": count})

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: dict[str, Any], id: str | None = None) -> str:
    head = f"id: {id}\n" if id else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# --- preferences ----------------------------------------------------------------------------


class Preferences(BaseModel):
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    phone: str | None = Field(
        default=None, pattern=PHONE_PATTERN, description="E.164, e.g. +212612345678"
    )
    language: Literal["fr", "ar", "en"] | None = Field(
        default=None, description="of your notifications; your account's language if absent"
    )
    digest: Flag = Field(
        default=False, description="one daily message instead of one per event (not emergencies)"
    )
    channels: dict[Kind, list[Channel]] = Field(
        default_factory=dict, description="per kind, instead of your organisation's default"
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA zone of the times in your mails, SMS and pages; the node's if absent",
        examples=["Africa/Casablanca"],
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not zones.is_zone(value):
            raise ValueError("unknown time zone: give an IANA name such as Africa/Casablanca")
        return value


class PreferencesView(Preferences):
    username: str
    available: list[Channel] = Field(description="the channels this node can send on")


@router.get("/preferences", summary="Your contact and notification choices")
async def get_preferences(n: Running, principal: Anyone) -> PreferencesView:
    username = staff_member(principal)
    async with n.ctx.pool.acquire() as conn:
        found = await store.preference(conn, username) or domain.Preference(username)
    return _preferences_view(found, n)


@router.put("/preferences", summary="Set your contact and notification choices")
async def put_preferences(chosen: Preferences, n: Running, principal: Anyone) -> PreferencesView:
    username = staff_member(principal)
    preference = domain.Preference(
        username=username,
        email=chosen.email,
        phone=chosen.phone,
        language=chosen.language,
        digest=chosen.digest,
        channels={kind: frozenset(c) for kind, c in chosen.channels.items()},
        timezone=chosen.timezone,
    )
    async with n.ctx.pool.acquire() as conn:
        await store.put_preference(conn, preference)
    return _preferences_view(preference, n)


def _preferences_view(p: domain.Preference, n: Notifier) -> PreferencesView:
    return PreferencesView(
        username=p.username,
        email=p.email,
        phone=p.phone,
        language=p.language,  # checked on the way in
        digest=p.digest,
        channels={kind: sorted(c) for kind, c in p.channels.items()},
        timezone=p.timezone,
        available=sorted(n.available),
    )


# --- the organisation's rules ---------------------------------------------------------------


class RuleIn(BaseModel):
    enabled: Flag = True
    roles: list[Role] = Field(default_factory=list, description="who is told")
    case_worker: Flag = Field(default=False, description="and who sent the referral")
    channels: list[Channel] = Field(default_factory=lambda: [Channel.IN_APP, Channel.EMAIL])
    webhook: Flag = Field(default=True, description="whether the webhooks get it")


class RuleView(RuleIn):
    kind: Kind
    default: bool = Field(description="the default rule, not adjusted by your organisation")


def _rule_view(kind: Kind, rule: domain.Rule, default: bool) -> RuleView:
    return RuleView(
        kind=kind,
        enabled=rule.enabled,
        roles=sorted(Role(r) for r in rule.roles),
        case_worker=rule.case_worker,
        channels=sorted(rule.channels),
        webhook=rule.webhook,
        default=default,
    )


@router.get("/rules", summary="Who is told what: the defaults and your organisation's changes")
async def get_rules(n: Running, _: Admin) -> list[RuleView]:
    async with n.ctx.pool.acquire() as conn:
        overrides = await store.rule_overrides(conn)
    rules = domain.rules_with(overrides)
    return [_rule_view(kind, rule, kind not in overrides) for kind, rule in rules.items()]


@router.put("/rules/{kind}", summary="Adjust the rule of one kind for your organisation")
async def put_rule(kind: Kind, rule: RuleIn, n: Running, principal: Admin) -> RuleView:
    chosen = domain.check_rule(
        kind,
        domain.Rule(
            enabled=rule.enabled,
            roles=frozenset(r.value for r in rule.roles),
            case_worker=rule.case_worker,
            channels=frozenset(rule.channels) | {Channel.IN_APP},
            webhook=rule.webhook,
        ),
    )
    async with n.ctx.pool.acquire() as conn:
        await store.put_rule(conn, kind, chosen, principal.subject)
    return _rule_view(kind, chosen, False)


@router.delete(
    "/rules/{kind}", status_code=status.HTTP_204_NO_CONTENT, summary="Back to the default"
)
async def reset_rule(kind: Kind, n: Running, _: Admin) -> Response:
    async with n.ctx.pool.acquire() as conn:
        await store.delete_rule(conn, kind)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- webhooks -------------------------------------------------------------------------------


class WebhookIn(BaseModel):
    url: str = Field(max_length=500, description="https://… of your member system")
    kinds: list[Kind] = Field(default_factory=list, description="which kinds; every kind if empty")


class WebhookView(BaseModel):
    id: UUID
    url: str
    kinds: list[Kind]
    enabled: bool
    consecutive_failures: int
    disabled_at: datetime | None
    disabled_reason: str | None
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookView):
    secret: str = Field(
        description="signs every delivery (Standard Webhooks, whsec_…); shown this once, kept "
        "sealed by the node"
    )


def _webhook(row: asyncpg.Record) -> dict[str, Any]:
    return {key: row[key] for key in WebhookView.model_fields}


@router.get("/webhooks", summary="Your organisation's webhooks")
async def list_webhooks(n: Running, _: Admin) -> list[WebhookView]:
    async with n.ctx.pool.acquire() as conn:
        return [WebhookView.model_validate(_webhook(r)) for r in await store.webhooks(conn)]


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    summary="Register a webhook for a member system",
    responses={422: {"description": "not a URL, or one that reaches an internal address"}},
)
async def add_webhook(hook: WebhookIn, n: Running, principal: Admin) -> WebhookCreated:
    row, secret = await handlers.register_webhook(n, hook.url, hook.kinds, principal.subject)
    return WebhookCreated.model_validate({**_webhook(row), "secret": secret})


@router.post("/webhooks/{webhook_id}/enable", summary="Enable a webhook again after failures")
async def enable_webhook(webhook_id: UUID, n: Running, _: Admin) -> WebhookView:
    return WebhookView.model_validate(_webhook(await handlers.enable_webhook(n, webhook_id)))


@router.delete(
    "/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a webhook"
)
async def delete_webhook(webhook_id: UUID, n: Running, _: Admin) -> Response:
    async with n.ctx.pool.acquire() as conn:
        if not await store.delete_webhook(conn, webhook_id):
            raise NotFound("no such webhook", field="webhook_id")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- the delivery log -----------------------------------------------------------------------


class Attempt(BaseModel):
    at: datetime
    outcome: Literal["sent", "failed", "gave_up"]
    detail: str
    duration_ms: int


class DeliveryView(BaseModel):
    id: UUID
    channel: Literal["email", "sms", "webhook"]
    recipient: str = Field(description="a username, or the webhook's id")
    kind: str
    state: str
    attempts: int
    emergency: bool
    created_at: datetime
    sent_at: datetime | None
    due_at: datetime
    last_error: str | None
    attempt_log: list[Attempt]


@router.get("/deliveries", summary="Every delivery attempt and its outcome, newest first")
async def delivery_log(
    n: Running,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Moment | None = None,
) -> list[DeliveryView]:
    async with n.ctx.pool.acquire() as conn:
        rows = await store.delivery_log(conn, limit=limit, before=before)
    return [DeliveryView.model_validate(r) for r in rows]
