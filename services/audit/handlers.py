"""Audit use cases: chain what the node's services record, sign checkpoints and send them to
the hub; on the hub, keep every node's checkpoints (refusing bad ones, loudly) and the network
log of the metadata crossing ``ROUTER``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.audit import store
from services.audit.domain import Draft, Entry
from shared import audit_trail, crypto
from shared.audit_trail import Actor
from shared.bus import Delivery
from shared.contracts.audit import AuditCheckpointed, AuditRecorded, Outcome, checkpoint_document
from shared.contracts.directory import OrganisationPublished
from shared.contracts.referrals import (
    ReferralEscalated,
    ReferralOffered,
    ReferralTransitioned,
    Status,
)
from shared.db import Connection, Pool
from shared.errors import Forbidden, NotFound, PermanentFailure
from shared.events import CloudEvent, Payload, new_event_id
from shared.service import ServiceContext

log = logging.getLogger(__name__)
SERVICE = "audit"
DIRECTORY_ORGANISATION = "relais.cmd.directory.organisation"


class AuditSettings(BaseSettings):
    """How often a node signs its chain's head: every ``checkpoint_every`` records, and at
    least every ``checkpoint_seconds`` if anything was added (RELAIS_AUDIT_*)."""

    model_config = SettingsConfigDict(env_prefix="RELAIS_AUDIT_", extra="ignore")

    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0


@dataclass
class Audit:
    """The audit service's state on one node: its append-only pool and its checkpoint clock."""

    ctx: ServiceContext
    writer: Pool
    settings: AuditSettings = field(default_factory=AuditSettings)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


_RUNNING: dict[int, Audit] = {}
_OPENING = asyncio.Lock()


async def audit_of(ctx: ServiceContext) -> Audit:
    """The audit state of ``ctx``, its writer pool opened on first use."""
    found = _RUNNING.get(id(ctx))
    if found is not None:
        return found
    async with _OPENING:
        found = _RUNNING.get(id(ctx))
        if found is None:
            writer = await store.create_writer_pool(ctx.settings.database_url)
            found = _RUNNING[id(ctx)] = Audit(ctx, writer)
    return found


async def close(ctx: ServiceContext) -> None:
    audit = _RUNNING.pop(id(ctx), None)
    if audit is not None:
        await audit.writer.close()


# --- the chain ------------------------------------------------------------------------------


def draft_of(event: CloudEvent, record: AuditRecorded, service: str) -> Draft:
    return Draft(
        at=record.at,
        service=service,
        actor_org=record.actor_org,
        actor=record.actor,
        action=record.action,
        object=record.object,
        digest=record.digest,
        outcome=record.outcome.value,
        event_id=event.id,
    )


async def chain_record(
    ctx: ServiceContext, event: CloudEvent, record: AuditRecorded, delivery: Delivery
) -> None:
    """A service of this node recorded an action: chain it (once, however often delivered)."""
    tokens = delivery.subject.split(".")
    service = tokens[2] if len(tokens) == 4 else "unknown"
    await append(ctx, [draft_of(event, record, service)])


async def chain_records(
    ctx: ServiceContext, items: Sequence[tuple[CloudEvent, Payload, Delivery]]
) -> None:
    """A fetch of records chained at once: one transaction, one turn of the chain's lock.
    Anything but records fails the batch, and the bus hands each event to ``chain_record``."""
    drafts = []
    for event, record, delivery in items:
        if not isinstance(record, AuditRecorded):
            raise TypeError(f"not an audit record: {event.type}")
        tokens = delivery.subject.split(".")
        drafts.append(draft_of(event, record, tokens[2] if len(tokens) == 4 else "unknown"))
    await append(ctx, drafts)


async def append(ctx: ServiceContext, drafts: list[Draft]) -> list[Entry]:
    audit = await audit_of(ctx)
    async with audit.writer.acquire() as conn, conn.transaction():
        entries = await store.append(conn, drafts)
    every = audit.settings.checkpoint_every
    if any(entry.seq % every == 0 for entry in entries):
        audit.wake.set()
    return entries


async def record_own(
    ctx: ServiceContext,
    actor: Actor,
    action: str,
    object: str,
    content: Any = None,
    outcome: Outcome = Outcome.OK,
    *,
    event_id: str | None = None,
) -> Entry | None:
    """Chain an action of the audit service itself (an export, a refused checkpoint)."""
    draft = Draft(
        at=datetime.now(UTC),
        service=SERVICE,
        actor_org=actor.org,
        actor=actor.name,
        action=action,
        object=object,
        digest="" if content is None else audit_trail.digest(content),
        outcome=outcome.value,
        event_id=event_id or new_event_id(),
    )
    entries = await append(ctx, [draft])
    return entries[0] if entries else None


async def record_keys(ctx: ServiceContext) -> None:
    """The node's key pairs enter the log once, when the audit service first sees them."""
    if ctx.keys is None:
        return
    audit = await audit_of(ctx)
    for key in ctx.keys.public_keys():
        object = f"key:{key['key_id']}"
        async with audit.writer.acquire() as conn:
            known = await conn.fetchval(
                "SELECT true FROM audit.entry WHERE action = 'key.created' AND object = $1 LIMIT 1",
                object,
            )
        if not known:
            actor = audit_trail.system(ctx.settings.org, "node")
            await record_own(ctx, actor, "key.created", object, key)


# --- checkpoints ----------------------------------------------------------------------------


async def make_checkpoint(ctx: ServiceContext) -> store.StoredCheckpoint | None:
    """Sign the chain's head and send it to the hub, unless the last checkpoint covers it."""
    if ctx.keys is None:
        raise RuntimeError("this node has no keys to sign checkpoints with")
    audit = await audit_of(ctx)
    settings = ctx.settings
    async with audit.writer.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", store.CHAIN_LOCK)
        top = await store.head(conn)
        last = await store.last_checkpoint(conn)
        if top.seq == 0 or (last is not None and last.seq >= top.seq):
            return None
        at = datetime.now(UTC)
        document = checkpoint_document(settings.org, settings.node_id, top.seq, top.hash, at)
        key_id, signature = ctx.keys.sign(document)
        checkpoint = store.StoredCheckpoint(top.seq, top.hash, at, key_id, signature)
        await store.save_checkpoint(conn, checkpoint)
        payload = AuditCheckpointed(
            org=settings.org,
            node_id=settings.node_id,
            seq=top.seq,
            hash=top.hash,
            at=at,
            key_id=key_id,
            signature=signature,
        )
        await ctx.send(conn, payload, to=settings.hub_org, about=f"audit:{settings.node_id}")
    log.info("audit checkpoint at record %d", top.seq)
    return checkpoint


async def checkpoint_clock(ctx: ServiceContext) -> None:
    """Sign a checkpoint every N records (woken by ``append``) or every interval."""
    audit = await audit_of(ctx)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(audit.wake.wait(), audit.settings.checkpoint_seconds)
        audit.wake.clear()
        try:
            await make_checkpoint(ctx)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            log.warning("could not make an audit checkpoint; retrying later", exc_info=True)


async def signing_key(ctx: ServiceContext, org: str, key_id: str, at: datetime) -> str:
    """The base64 Ed25519 key ``key_id`` of ``org``, valid at ``at``, from the node's
    directory (asked over NATS); ``Forbidden`` naming why if there is none."""
    try:
        found = await ctx.bus.request(DIRECTORY_ORGANISATION, {"org_id": org})
    except NotFound as exc:
        raise Forbidden(f"the directory does not know {org}") from exc
    record = OrganisationPublished.model_validate(found)
    for key in record.keys:
        if key.key_id != key_id or key.use.value != "ed25519":
            continue
        if key.valid_from > at or (key.valid_until is not None and key.valid_until <= at):
            raise Forbidden(f"key {key_id} of {org} was not valid at {at.isoformat()}")
        return key.public_key
    raise Forbidden(f"{org} has no signing key {key_id} in the directory")


async def receive_checkpoint(
    ctx: ServiceContext, event: CloudEvent, checkpoint: AuditCheckpointed, delivery: Delivery
) -> None:
    """On the hub: keep a node's checkpoint if its node's key signed it and it agrees with
    that node's earlier ones; otherwise refuse it and raise an alert."""
    org = checkpoint.org
    try:
        if delivery.sender != org:
            raise Forbidden(f"{delivery.sender} sent a checkpoint in the name of {org}")
        key = await signing_key(ctx, org, checkpoint.key_id, checkpoint.at)
        crypto.verify(checkpoint.document(), checkpoint.signature, key)
    except Forbidden as refusal:
        await alert(ctx, event, org, "bad_signature", refusal.detail)
        return
    stored = store.StoredCheckpoint(
        checkpoint.seq,
        checkpoint.hash,
        checkpoint.at,
        checkpoint.key_id,
        checkpoint.signature,
        org=org,
        node_id=checkpoint.node_id,
    )
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('audit-checkpoints:' || $1))", org
        )
        contradiction = await conn.fetchrow(
            "SELECT seq, hash, at FROM audit.node_checkpoint WHERE org = $1 AND ("
            " (seq = $2 AND hash <> $3)"
            " OR (seq > $2 AND at < $4) OR (seq < $2 AND at > $4)) ORDER BY seq LIMIT 1",
            org,
            checkpoint.seq,
            checkpoint.hash,
            checkpoint.at,
        )
        if contradiction is None:
            await store.save_node_checkpoint(conn, stored, event.id)
            return
    detail = (
        f"checkpoint at record {checkpoint.seq} contradicts the one at record"
        f" {contradiction['seq']} of {contradiction['at'].isoformat()}"
    )
    await alert(ctx, event, org, "contradiction", detail)


async def alert(ctx: ServiceContext, event: CloudEvent, org: str, kind: str, detail: str) -> None:
    """A refused checkpoint: logged, kept for the secretariat to see, and chained."""
    async with ctx.pool.acquire() as conn:
        fresh = await store.save_alert(conn, org, kind, detail, event.id)
    if fresh:
        log.error("audit: refused a checkpoint from %s (%s): %s", org, kind, detail)
    await record_own(
        ctx,
        audit_trail.system(ctx.settings.org, SERVICE),
        "checkpoint.refused",
        f"node:{org}",
        {"kind": kind, "detail": detail, "event": event.id},
        Outcome.REFUSED,
        event_id=event.id,
    )


# --- the network log (hub) ------------------------------------------------------------------


def _ends(delivery: Delivery) -> tuple[str, str]:
    tokens = delivery.subject.split(".")
    return tokens[2], tokens[3]


@dataclass(frozen=True)
class NetworkEntry:
    """One row of the network log, and the statement that keeps its facts up to date."""

    action: str
    object: str
    meta: dict[str, Any]
    fact: tuple[str, list[Any]] | None = None


async def _write(
    conn: Connection, event: CloudEvent, delivery: Delivery, entry: NetworkEntry
) -> None:
    sender, recipient = _ends(delivery)
    inserted = await conn.fetchval(
        "INSERT INTO audit.network_event (event_id, at, action, from_org, to_org, object, meta)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING"
        " RETURNING true",
        event.id,
        event.time,
        entry.action,
        sender,
        recipient,
        entry.object,
        entry.meta,
    )
    if inserted and entry.fact is not None:
        await conn.execute(entry.fact[0], *entry.fact[1])


async def log_network(
    ctx: ServiceContext, event: CloudEvent, payload: Payload, delivery: Delivery
) -> None:
    """One event crossing ``ROUTER`` in the network log, in a transaction of its own."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _write(conn, event, delivery, await network_entry(conn, payload))


async def log_network_batch(
    ctx: ServiceContext, items: Sequence[tuple[CloudEvent, Payload, Delivery]]
) -> None:
    """A fetch of events crossing ``ROUTER``, in stream order, in one transaction (each row
    is keyed by its event id: a redelivered one adds nothing)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        for event, payload, delivery in items:
            await _write(conn, event, delivery, await network_entry(conn, payload))


async def network_entry(conn: Connection, payload: Payload) -> NetworkEntry:
    if isinstance(payload, ReferralOffered):
        return _offer(payload)
    if isinstance(payload, ReferralTransitioned):
        return _transition(payload)
    if isinstance(payload, ReferralEscalated):
        return _escalation(payload)
    if isinstance(payload, OrganisationPublished):
        return await _publication(conn, payload)
    raise PermanentFailure(f"the network log does not keep {type(payload).__name__}")


def _offer(offer: ReferralOffered) -> NetworkEntry:
    """A referral crosses the hub: its clear header is logged; the sealed payload never is."""
    h = offer.header
    meta = {
        "category": h.category,
        "urgency": h.urgency.value,
        "region": h.region,
        "created_at": h.created_at.isoformat(),
        "acknowledge_by": h.acknowledge_by.isoformat(),
        "answer_by": h.answer_by.isoformat(),
    }
    fact = (
        "INSERT INTO audit.referral_fact (referral_id, from_org, to_org, category, urgency,"
        " region, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (referral_id) DO UPDATE SET from_org = EXCLUDED.from_org,"
        " to_org = EXCLUDED.to_org, category = EXCLUDED.category, urgency = EXCLUDED.urgency,"
        " region = EXCLUDED.region, created_at = EXCLUDED.created_at, updated_at = now()",
        [h.referral_id, h.from_org, h.to_org, h.category, h.urgency.value, h.region, h.created_at],
    )
    return NetworkEntry(
        action="referral.offered", object=f"referral:{h.referral_id}", meta=meta, fact=fact
    )


ANSWERS = (Status.ACCEPTED, Status.DECLINED)
CLOSINGS = (Status.DECLINED, Status.CLOSED_UNRESOLVED, Status.WITHDRAWN, Status.EXPIRED)


def _transition(step: ReferralTransitioned) -> NetworkEntry:
    """A referral moved on: status, when, by whom, the reason code; never the sealed note."""
    meta = {
        "status": step.status.value,
        "at": step.at.isoformat(),
        "by_org": step.by_org,
        "reason": step.reason,
    }
    fact = (
        "INSERT INTO audit.referral_fact (referral_id, status, answered_at, completed_at,"
        " closed_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (referral_id) DO UPDATE SET status = EXCLUDED.status,"
        " answered_at = coalesce(referral_fact.answered_at, EXCLUDED.answered_at),"
        " completed_at = coalesce(referral_fact.completed_at, EXCLUDED.completed_at),"
        " closed_at = coalesce(referral_fact.closed_at, EXCLUDED.closed_at), updated_at = now()",
        [
            step.referral_id,
            step.status.value,
            step.at if step.status in ANSWERS else None,
            step.at if step.status is Status.COMPLETED else None,
            step.at if step.status in CLOSINGS else None,
        ],
    )
    action = f"referral.{step.status.value}"
    return NetworkEntry(action=action, object=f"referral:{step.referral_id}", meta=meta, fact=fact)


def _escalation(escalation: ReferralEscalated) -> NetworkEntry:
    meta = {
        "from_org": escalation.from_org,
        "to_org": escalation.to_org,
        "category": escalation.category,
        "urgency": escalation.urgency.value,
        "status": escalation.status.value,
        "deadline": escalation.deadline,
        "due_at": escalation.due_at.isoformat(),
    }
    fact = (
        "INSERT INTO audit.referral_fact (referral_id, from_org, to_org, category, urgency,"
        " escalated) VALUES ($1, $2, $3, $4, $5, true)"
        " ON CONFLICT (referral_id) DO UPDATE SET escalated = true, updated_at = now()",
        [
            escalation.referral_id,
            escalation.from_org,
            escalation.to_org,
            escalation.category,
            escalation.urgency.value,
        ],
    )
    object = f"referral:{escalation.referral_id}"
    return NetworkEntry(action="referral.overdue", object=object, meta=meta, fact=fact)


async def _publication(conn: Connection, record: OrganisationPublished) -> NetworkEntry:
    """A directory record: its membership and keys in the log (no focal point's name), the
    record itself kept for coverage (read in the caller's transaction: a batch with two
    versions of one record compares the second with the first)."""
    held = await conn.fetchrow(
        "SELECT version, record FROM audit.provider WHERE org_id = $1", record.org_id
    )
    previous = None if held is None else OrganisationPublished.model_validate(held["record"])
    changed = _changes(previous, record)
    meta = {
        "version": record.version,
        "status": record.status.value,
        "key_ids": sorted(k.key_id for k in record.keys),
        "changed": changed,
    }
    data = record.model_dump(mode="json")
    data.pop("focal_points", None)
    fact = (
        "INSERT INTO audit.provider (org_id, version, record) VALUES ($1, $2, $3)"
        " ON CONFLICT (org_id) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record"
        " WHERE provider.version < EXCLUDED.version",
        [record.org_id, record.version, data],
    )
    object = f"organisation:{record.org_id}"
    return NetworkEntry(action="organisation.published", object=object, meta=meta, fact=fact)


def _changes(previous: OrganisationPublished | None, record: OrganisationPublished) -> list[str]:
    if previous is None:
        return ["new"]
    changes = []
    if previous.status != record.status:
        changes.append("membership")
    if {k.key_id for k in previous.keys} != {k.key_id for k in record.keys}:
        changes.append("keys")
    if previous.services != record.services:
        changes.append("services")
    return changes or ["profile"]
