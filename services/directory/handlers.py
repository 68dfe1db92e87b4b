"""Directory use cases: publish an organisation (hub), replicate one (every node), probe links."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta

from services.directory import domain, hub_server, matching, search, store
from shared import audit_trail, crypto, processed
from shared.auth import Principal
from shared.bus import Delivery
from shared.contracts.directory import (
    ORGANISATION_CHANGED_NOTICE,
    Capacity,
    DirectoryReplayRequested,
    FloodReported,
    LinkAnswered,
    LinkProbed,
    MembershipStatus,
    OrganisationChangeRefused,
    OrganisationChangeRequested,
    OrganisationPublished,
)
from shared.db import Connection
from shared.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, PermanentFailure
from shared.events import BROADCAST, CloudEvent, Payload
from shared.federation import INBOX, Member
from shared.membership.accounts import OrgAccount, render_accounts
from shared.membership.joining import Application, KeyChange, check_application, check_key_change
from shared.service import ServiceContext

SCHEMA = store.SCHEMA
log = logging.getLogger(__name__)
CONSUMER = "directory"  # the durable consumer of the INBOX (consumer.py)


async def publish_organisation(
    ctx: ServiceContext, record: OrganisationPublished, actor: audit_trail.Actor | None = None
) -> OrganisationPublished:
    """On the hub: record a new version of an organisation and broadcast it to every node."""
    return await _publish(
        ctx, record.org_id, lambda current: domain.coordinator_edit(current, record), actor=actor
    )


async def change_membership(
    ctx: ServiceContext,
    org_id: str,
    action: domain.Membership,
    reason: str | None,
    actor: audit_trail.Actor | None = None,
) -> OrganisationPublished:
    """On the hub: admit, reject, suspend, reinstate or let go of an organisation."""

    def changed(current: OrganisationPublished | None) -> OrganisationPublished:
        if current is None:
            raise NotFound(f"no organisation {org_id}", field="org_id")
        return domain.change_membership(current, action, reason, secretariat=ctx.settings.org)

    return await _publish(ctx, org_id, changed, actor=actor, action=f"membership.{action}")


async def publish_own_record(
    ctx: ServiceContext,
    change: Callable[[OrganisationPublished | None], OrganisationPublished],
    *,
    actor: audit_trail.Actor,
    action: str,
) -> OrganisationPublished:
    """On the hub: publish the secretariat's own record as ``change`` makes it (its keys
    rotated)."""
    return await _publish(ctx, ctx.settings.org, change, actor=actor, action=action)


async def _publish(
    ctx: ServiceContext,
    org_id: str,
    change: Callable[[OrganisationPublished | None], OrganisationPublished],
    *,
    event_id: str | None = None,
    actor: audit_trail.Actor | None = None,
    action: str = "organisation.published",
    also: Callable[[Connection], Awaitable[None]] | None = None,
) -> OrganisationPublished:
    """Apply ``change`` to the hub's record, store it and broadcast it, and audit it, in one
    transaction; with ``event_id``, once however often that event is delivered."""
    if not ctx.settings.is_hub:
        raise Forbidden("only the hub publishes the directory")
    async with ctx.pool.acquire() as conn, conn.transaction():
        # Changes to one record are applied in order: the row lock serialises them.
        await conn.execute(
            "SELECT 1 FROM directory.organisation WHERE org_id = $1 FOR UPDATE", org_id
        )
        current = await store.get_organisation(conn, org_id)
        if event_id and not await processed.first_time(conn, SCHEMA, "directory.hub", event_id):
            assert current is not None
            return current
        accepted = change(current)
        await store.save_organisation(conn, accepted)
        if also is not None:
            await also(conn)
        await ctx.send(conn, accepted, to=BROADCAST, about=accepted.org_id)
        await _audit(
            conn,
            actor or audit_trail.system(ctx.settings.org, SCHEMA),
            action,
            accepted.org_id,
            accepted,
        )
    await _tell_copies(ctx, accepted.org_id)
    await ensure_hub_topology(ctx)
    return accepted


async def _tell_copies(ctx: ServiceContext, org_id: str) -> None:
    """After the change committed: the node's services that keep a copy of the record read it
    again. A notice lost is no harm done beyond a copy kept a little longer (they keep one for
    a short while only, and forget all on a reconnection)."""
    try:
        await ctx.bus.notice(ORGANISATION_CHANGED_NOTICE, {"org_id": org_id})
    except Exception as exc:  # committed already: the change stands whatever NATS says
        log.warning("directory: could not tell the node's services of %s (%s)", org_id, exc)


async def ensure_hub_topology(ctx: ServiceContext, cut: Collection[str] = ()) -> None:
    """On the hub: every admitted organisation's NATS account (its user only while it is active
    and its credentials hold), then the FROM_/TO_ streams in it, ROUTER, and the consumers
    their sources name. The links of the orgs in ``cut`` are dropped even if they may connect
    (a replaced key: a reload does not end a link made with the old one)."""
    if not ctx.settings.is_hub:
        return
    settings = ctx.settings
    async with _topology:
        async with ctx.pool.acquire() as conn:
            records = {r.org_id: r for r in await store.list_organisations(conn)}
            credentials = await store.leaf_credentials(conn)
        accounts = _accounts(records, credentials, settings.org)
        left = [org for org, r in records.items() if r.status is MembershipStatus.LEFT]
        await hub_server.retire_members([org for org in left if org in credentials], ctx.bus)
        if settings.nats_accounts_file is None or settings.nats_system_url is None:
            if accounts:
                log.error(
                    "hub: RELAIS_NATS_ACCOUNTS_FILE and RELAIS_NATS_SYSTEM_URL are not set:"
                    " members cannot be given their accounts"
                )
            accounts = []
        else:
            await hub_server.apply_accounts(
                render_accounts(
                    accounts,
                    hub_domain=settings.hub_domain,
                    quota=settings.quota,
                    replicas=settings.stream_replicas,
                    leaf_links=settings.leaf_links_per_member,
                ),
                accounts_file=settings.nats_accounts_file,
                system_url=settings.nats_system_url,
                hub=ctx.bus.nc,
                connected=[a.org for a in accounts],
                cut=[org for org in credentials if org in cut or org not in _may_connect(accounts)],
            )
        await _ensure_streams(ctx, [Member(a.org, a.org) for a in accounts])


_topology = asyncio.Lock()


def _accounts(
    records: dict[str, OrganisationPublished],
    credentials: dict[str, tuple[str, datetime, datetime]],
    hub_org: str,
) -> list[OrgAccount]:
    now = datetime.now(UTC)
    accounts = []
    for org, (nkey, _, expires_at) in sorted(credentials.items()):
        record = records.get(org)
        if org == hub_org or record is None or record.status not in _HAS_ACCOUNT:
            continue
        active = record.status is MembershipStatus.ACTIVE
        if active and expires_at <= now:
            log.warning(
                "hub: the NATS credentials of %s expired at %s: its link is refused",
                org,
                expires_at.isoformat(),
            )
        accounts.append(OrgAccount(org, nkey if active and expires_at > now else None))
    return accounts


_HAS_ACCOUNT = {MembershipStatus.ACTIVE, MembershipStatus.SUSPENDED}


def _may_connect(accounts: list[OrgAccount]) -> set[str]:
    return {a.org for a in accounts if a.nkey is not None}


async def _ensure_streams(ctx: ServiceContext, members: list[Member]) -> None:
    settings = ctx.settings
    await hub_server.declare_hub_streams(
        ctx.bus,
        Member(settings.org, settings.hub_domain),
        members,
        hub_domain=settings.hub_domain,
        replicas=settings.stream_replicas,
        quota=settings.quota,
    )


async def apply_for_membership(
    ctx: ServiceContext,
    application: Application,
    valid_days: float,
    actor: audit_trail.Actor | None = None,
) -> OrganisationPublished:
    """On the hub: record a checked application (the organisation as an applicant, and its
    leaf's NATS key with its validity), refused if the organisation is already known."""
    check_application(application)
    org_id = application.org_id
    issued = datetime.now(UTC)

    def new(current: OrganisationPublished | None) -> OrganisationPublished:
        if current is not None:
            raise Conflict(f"{org_id} is already in the directory", field="org_id")
        return domain.coordinator_edit(None, application.record)

    async def credential(conn: Connection) -> None:
        expires = issued + timedelta(days=valid_days)
        await store.save_leaf_credential(conn, org_id, application.nkey, issued, expires)

    published = await _publish(
        ctx, org_id, new, actor=actor, action="membership.applied", also=credential
    )
    credentials_changed.set()
    return published


async def leaf_credential(ctx: ServiceContext, org_id: str) -> tuple[str, datetime, datetime]:
    """On the hub: an organisation's NATS key and its validity, to issue its credentials."""
    async with ctx.pool.acquire() as conn:
        found = (await store.leaf_credentials(conn)).get(org_id)
    if found is None:
        raise NotFound(f"{org_id} has no NATS credentials: admit its application", field="org_id")
    return found


async def renew_leaf_credential(
    ctx: ServiceContext,
    org_id: str,
    valid_days: float,
    actor: audit_trail.Actor,
    key_change: KeyChange | None = None,
) -> tuple[str, datetime, datetime]:
    """On the hub: an admitted organisation's NATS credentials, valid ``valid_days`` from now,
    for the same key or, with ``key_change`` signed by the organisation, for its new one (the
    old key's link is cut at once). A node refused for expired credentials links again."""
    issued = datetime.now(UTC)
    expires = issued + timedelta(days=valid_days)
    async with ctx.pool.acquire() as conn, conn.transaction():
        found = (await store.leaf_credentials(conn)).get(org_id)
        record = await store.get_organisation(conn, org_id)
        if found is None or record is None:
            raise NotFound(
                f"{org_id} has no NATS credentials: admit its application", field="org_id"
            )
        nkey = found[0]
        if key_change is not None:
            check_key_change(key_change, record)
            nkey = key_change.nkey
        await store.save_leaf_credential(conn, org_id, nkey, issued, expires)
        await audit_trail.record(
            conn,
            SCHEMA,
            actor=actor,
            action="credentials.renewed" if key_change is None else "credentials.rekeyed",
            object=f"organisation:{org_id}",
            content={"expires_at": expires.isoformat(), "nkey": nkey},
        )
    credentials_changed.set()
    await ensure_hub_topology(ctx, cut=[org_id] if nkey != found[0] else [])
    return nkey, issued, expires


# Set when an organisation's credentials are stored, so that the expiry watch (main.py)
# looks again at once rather than at the end of the wait it had started.
credentials_changed = asyncio.Event()


async def next_credential_expiry(ctx: ServiceContext) -> datetime | None:
    """On the hub: the soonest expiry still to come among the organisations' NATS keys."""
    async with ctx.pool.acquire() as conn:
        credentials = await store.leaf_credentials(conn)
    now = datetime.now(UTC)
    coming = [expires for _, _, expires in credentials.values() if expires > now]
    return min(coming, default=None)


async def request_change(
    ctx: ServiceContext, principal: Principal, proposed: OrganisationPublished
) -> OrganisationPublished:
    """On a member node: ask the hub to publish the organisation's new record, signed."""
    org_id = proposed.org_id
    if ctx.settings.is_hub or principal.org != org_id or principal.kind != "user":
        raise Forbidden("an organisation's staff change only their own organisation's record")
    if ctx.keys is None:
        raise RuntimeError("this node has no keys to sign with")
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await store.get_organisation(conn, org_id)
        if current is None:
            raise NotFound(f"{org_id} is not in this node's directory yet", field="org_id")
        if proposed.keys != current.keys:  # made and held on the node, not typed in a form
            raise Forbidden("keys change with relais node rotate-keys on the node", field="keys")
        checked = domain.own_change(current, proposed)  # refuse here what the hub would
        record = checked.model_dump(mode="json")
        key_id, signature = ctx.keys.sign(record)
        request = OrganisationChangeRequested(record=checked, key_id=key_id, signature=signature)
        await store.record_change_request(conn, org_id, checked.version, principal.subject)
        await ctx.send(conn, request, to=ctx.settings.hub_org)
        await _audit(
            conn, audit_trail.actor_of(principal), "organisation.change_requested", org_id, checked
        )
    return checked


async def set_capacity(
    ctx: ServiceContext, principal: Principal, org_id: str, service_id: str, capacity: Capacity
) -> OrganisationPublished:
    """On a member node: the one-click capacity change, sent to the hub as a record change."""
    async with ctx.pool.acquire() as conn:
        current = await store.get_organisation(conn, org_id)
    if current is None:
        raise NotFound(f"{org_id} is not in this node's directory yet", field="org_id")
    changed = domain.with_capacity(current, service_id, capacity, datetime.now(UTC))
    return await request_change(ctx, principal, changed)


async def apply_change_request(
    ctx: ServiceContext,
    event: CloudEvent,
    request: OrganisationChangeRequested,
    delivery: Delivery,
) -> None:
    """On the hub: publish an organisation's change to its own record, or say why not.

    A change claiming another organisation, or not signed by the organisation's current key,
    is refused loudly (dead-lettered, visible to the hub's admin); an honest mistake (stale
    version, unknown code) is answered with the reason.
    """
    org_id = request.record.org_id
    if delivery.sender != org_id:
        raise Forbidden(f"{delivery.sender} sent a change to {org_id}'s record")
    async with ctx.pool.acquire() as conn:
        current = await store.get_organisation(conn, org_id)
    if current is None:
        raise Forbidden(f"{org_id} is not a member")
    key = domain.signing_key(current, request.key_id, datetime.now(UTC))
    crypto.verify(event.data["record"], request.signature, key.public_key)  # as sent, not re-dumped
    try:
        await _publish(
            ctx,
            org_id,
            lambda held: domain.own_change(_known(held), request.record),
            event_id=event.id,
            actor=audit_trail.system(org_id, SCHEMA),
        )
    except (Conflict, Invalid, Forbidden, NotFound) as refusal:
        await _refuse(ctx, request.record, refusal)


def _known(record: OrganisationPublished | None) -> OrganisationPublished:
    if record is None:
        raise Forbidden("not a member")
    return record


async def _refuse(ctx: ServiceContext, record: OrganisationPublished, error: DomainError) -> None:
    refusal = OrganisationChangeRefused(
        org_id=record.org_id, version=record.version, reason=error.detail, field=error.field
    )
    async with ctx.pool.acquire() as conn, conn.transaction():
        await ctx.send(conn, refusal, to=record.org_id)


async def record_refusal(
    ctx: ServiceContext,
    event: CloudEvent,
    refusal: OrganisationChangeRefused,
    delivery: Delivery,
) -> None:
    """On a member node: the hub said no to a change; keep its reason for the staff to see."""
    if delivery.sender != ctx.settings.hub_org or refusal.org_id != ctx.settings.org:
        raise Forbidden("refusals come from the hub, about this node's organisation")

    async def keep_reason(conn: Connection) -> None:
        await store.refuse_change_request(
            conn, refusal.org_id, refusal.version, refusal.reason, refusal.field
        )
        await _audit(conn, _hub(ctx), "organisation.change_refused", refusal.org_id, refusal)

    await _once(ctx, "directory.refusal", event, keep_reason)


async def request_replay(ctx: ServiceContext, reason: str) -> None:
    """On a member node: ask the hub for every current record (a new or rebuilt replica)."""
    if ctx.settings.is_hub:
        # Not an input at fault: the route serves member nodes only (404, as documented).
        raise NotFound("the hub holds the directory itself: it has no replica to rebuild")
    async with ctx.pool.acquire() as conn, conn.transaction():
        await ctx.send(conn, DirectoryReplayRequested(reason=reason), to=ctx.settings.hub_org)


async def replay_directory(
    ctx: ServiceContext, event: CloudEvent, _: DirectoryReplayRequested, delivery: Delivery
) -> None:
    """On the hub: send every current record to the node that asked, addressed to it alone."""
    recipient = delivery.sender
    assert recipient is not None

    async def send_all(conn: Connection) -> None:
        for record in await store.list_organisations(conn):
            await ctx.send(conn, record, to=recipient, about=record.org_id)

    await _once(ctx, "directory.replay", event, send_all)


async def caught_up(ctx: ServiceContext, inbox_seq: int) -> bool:
    """Whether the replica has applied every directory event of the INBOX up to ``inbox_seq``.
    The hub publishes an organisation's new keys before that organisation signs with them, and
    both travel through ROUTER and this node's INBOX in that order: an envelope signed with a
    key the replica lacks is from a key the sender never published if the replica is caught
    up, and may be from a new one if it is not."""
    return await ctx.bus.caught_up(INBOX, CONSUMER, inbox_seq)


async def organisation(ctx: ServiceContext, org_id: str) -> OrganisationPublished:
    """This node's copy of one organisation's record (readable while the hub is away)."""
    async with ctx.pool.acquire() as conn:
        record = await store.get_organisation(conn, org_id)
    if record is None:
        raise NotFound(f"no organisation {org_id}", field="org_id")
    return record


async def match(
    ctx: ServiceContext, request: matching.MatchRequest, sender_org: str
) -> list[matching.Suggestion]:
    """Who should receive a referral, best first, each with the reasons for its rank."""
    async with ctx.pool.acquire() as conn:
        return await search.suggest(conn, search.checked(request), sender_org=sender_org)


async def replicate_organisation(
    ctx: ServiceContext, event: CloudEvent, record: OrganisationPublished, delivery: Delivery
) -> None:
    """On every other node: apply the hub's broadcast if it is newer than the replica's."""
    if delivery.sender != ctx.settings.hub_org:
        raise Forbidden(f"directory records come from the hub, not from {delivery.sender}")

    async def apply_if_newer(conn: Connection) -> None:
        current = await store.get_organisation(conn, record.org_id)
        if domain.should_apply(current.version if current else None, record):
            await store.save_organisation(conn, record)
            await store.settle_change_requests(conn, record.org_id, record.version)
            await _audit(conn, _hub(ctx), "organisation.replicated", record.org_id, record)

    await _once(ctx, "directory.replica", event, apply_if_newer)
    await _tell_copies(ctx, record.org_id)
    if record.org_id == ctx.settings.org:
        take_up_keys(ctx, record)


async def replicate_organisations(
    ctx: ServiceContext, items: Sequence[tuple[CloudEvent, Payload, Delivery]]
) -> None:
    """A fetch of the hub's broadcasts applied in one transaction, in stream order, each once
    (a replica catching up after an outage); what ``replicate_organisation`` does one by one.
    A fetch holding anything else is refused whole: the consumer then takes it one by one."""
    records: list[tuple[CloudEvent, OrganisationPublished]] = []
    for event, payload, delivery in items:
        if not isinstance(payload, OrganisationPublished):
            raise PermanentFailure(f"{event.type} is not applied in a batch")
        if delivery.sender != ctx.settings.hub_org:
            raise Forbidden(f"directory records come from the hub, not from {delivery.sender}")
        records.append((event, payload))
    async with ctx.pool.acquire() as conn, conn.transaction():
        for event, record in records:
            if not await processed.first_time(conn, SCHEMA, "directory.replica", event.id):
                continue
            current = await store.get_organisation(conn, record.org_id)
            if domain.should_apply(current.version if current else None, record):
                await store.save_organisation(conn, record)
                await store.settle_change_requests(conn, record.org_id, record.version)
                await _audit(conn, _hub(ctx), "organisation.replicated", record.org_id, record)
    for org_id in dict.fromkeys(record.org_id for _, record in records):
        await _tell_copies(ctx, org_id)
    for _, record in records:
        if record.org_id == ctx.settings.org:
            take_up_keys(ctx, record)


def take_up_keys(ctx: ServiceContext, record: OrganisationPublished) -> None:
    """Once the hub publishes the keys a rotation made, the node signs with them (every
    service, read from the key folder)."""
    if isinstance(ctx.keys, crypto.KeyRing) and ctx.keys.take_up({k.key_id for k in record.keys}):
        log.info("the organisation's new keys are published: the node signs with them now")


async def probe(ctx: ServiceContext, org_id: str) -> str:
    """Send a probe to another organisation's node; its answer records the round trip."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await store.get_organisation(conn, org_id) is None:
            raise NotFound(f"no organisation {org_id} in the directory", field="org_id")
        payload = LinkProbed(probe_id=secrets.token_hex(8), sent_at=datetime.now(UTC))
        await store.record_probe(conn, org_id, payload.probe_id, payload.sent_at)
        await ctx.send(conn, payload, to=org_id)
    return payload.probe_id


async def answer_probe(
    ctx: ServiceContext, event: CloudEvent, probe: LinkProbed, delivery: Delivery
) -> None:
    """A probe arrived: answer it, once."""
    sender = delivery.sender
    assert sender is not None

    async def answer(conn: Connection) -> None:
        answered = LinkAnswered(
            probe_id=probe.probe_id, probed_at=probe.sent_at, answered_at=datetime.now(UTC)
        )
        await ctx.send(conn, answered, to=sender)

    await _once(ctx, "directory.probe", event, answer)


async def record_answer(
    ctx: ServiceContext, event: CloudEvent, answer: LinkAnswered, delivery: Delivery
) -> None:
    """An answer came back: record the round trip of the probe it answers."""
    sender = delivery.sender
    assert sender is not None

    async def record_round_trip(conn: Connection) -> None:
        probed_at = await store.get_probe(conn, sender, answer.probe_id)
        if probed_at is None:
            return  # an answer to a probe superseded by a newer one
        result = domain.round_trip(answer.probe_id, probed_at, datetime.now(UTC))
        await store.record_answer(
            conn, sender, answer.probe_id, datetime.now(UTC), result.round_trip_ms
        )

    await _once(ctx, "directory.answer", event, record_round_trip)


async def record_flood(
    ctx: ServiceContext, event: CloudEvent, report: FloodReported, delivery: Delivery
) -> None:
    """On the hub: a node says one organisation floods it with envelopes it refuses; keep the
    incident's latest figures for the coordinators (audited when it is first reported)."""
    reporter = delivery.sender
    if not ctx.settings.is_hub or reporter is None:
        raise PermanentFailure("only the hub collects flood reports")

    async def keep(conn: Connection) -> None:
        first = await store.record_flood(conn, reporter, report)
        if first:
            log.warning(
                "hub: %s reports a flood of refused envelopes from %s (%d so far)",
                reporter,
                report.sender,
                report.refused,
            )
            await _audit(
                conn,
                audit_trail.Actor(reporter, "system:referrals"),
                "flood.reported",
                report.sender,
                report,
            )

    await _once(ctx, "directory.flood", event, keep)


async def _once(
    ctx: ServiceContext,
    consumer: str,
    event: CloudEvent,
    apply: Callable[[Connection], Awaitable[None]],
) -> None:
    """``apply(conn)`` an event in one transaction with the note that ``consumer`` handled
    it: once, however often the broker delivers it."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await processed.first_time(conn, SCHEMA, consumer, event.id):
            await apply(conn)


def _hub(ctx: ServiceContext) -> audit_trail.Actor:
    """Who a change the hub sent is recorded as in this node's audit log."""
    return audit_trail.system(ctx.settings.hub_org, SCHEMA)


async def _audit(
    conn: Connection, actor: audit_trail.Actor, action: str, org_id: str, record: Payload
) -> None:
    """A directory state change in the node's audit log, in the change's transaction: the
    record's digest, never its focal points' names."""
    await audit_trail.record(
        conn,
        SCHEMA,
        actor=actor,
        action=action,
        object=f"organisation:{org_id}",
        content=record.model_dump(mode="json"),
    )
