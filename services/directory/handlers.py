"""Directory use cases: publish an organisation (hub), replicate one (every node), probe links."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from services.directory import domain, store
from shared import outbox, processed
from shared.bus import Delivery
from shared.contracts.directory import LinkAnswered, LinkProbed, OrganisationPublished
from shared.errors import Forbidden, NotFound
from shared.events import BROADCAST, CloudEvent, make_event, registry
from shared.federation import Member, hub_member_streams, router_stream
from shared.service import ServiceContext

SCHEMA = store.SCHEMA


async def publish_organisation(
    ctx: ServiceContext, record: OrganisationPublished
) -> OrganisationPublished:
    """On the hub: record a new version of an organisation and broadcast it to every node."""
    return await _publish(ctx, record.org_id, lambda current: domain.next_record(current, record))


async def change_membership(
    ctx: ServiceContext, org_id: str, action: domain.Membership, reason: str | None
) -> OrganisationPublished:
    """On the hub: admit, reject, suspend, reinstate or let go of an organisation."""

    def changed(current: OrganisationPublished | None) -> OrganisationPublished:
        if current is None:
            raise NotFound(f"no organisation {org_id}", field="org_id")
        return domain.change_membership(current, action, reason)

    return await _publish(ctx, org_id, changed)


async def _publish(
    ctx: ServiceContext,
    org_id: str,
    change: Callable[[OrganisationPublished | None], OrganisationPublished],
) -> OrganisationPublished:
    """Apply ``change`` to the hub's record, store it and broadcast it, in one transaction."""
    if not ctx.settings.is_hub:
        raise Forbidden("only the hub publishes the directory")
    async with ctx.pool.acquire() as conn, conn.transaction():
        # Changes to one record are applied in order: the row lock serialises them.
        await conn.execute(
            "SELECT 1 FROM directory.organisation WHERE org_id = $1 FOR UPDATE", org_id
        )
        accepted = change(await store.get_organisation(conn, org_id))
        await store.save_organisation(conn, accepted)
        event = make_event(accepted, source=ctx.source, subject=accepted.org_id)
        subject = registry.for_payload(OrganisationPublished).subject(
            sender=ctx.settings.org, recipient=BROADCAST
        )
        await outbox.add(conn, SCHEMA, subject, event)
    await ensure_hub_topology(ctx)
    return accepted


async def ensure_hub_topology(ctx: ServiceContext) -> None:
    """On the hub: the FROM_/TO_ streams of every organisation in the directory, and ROUTER."""
    if not ctx.settings.is_hub:
        return
    async with ctx.pool.acquire() as conn:
        records = await store.list_organisations(conn)
    # A member node's JetStream domain is its organisation's id (``relais node`` sets both).
    members = {Member(ctx.settings.org, ctx.settings.hub_domain)}
    members |= {Member(r.org_id, r.org_id) for r in records if r.org_id != ctx.settings.org}
    replicas = ctx.settings.stream_replicas
    for member in sorted(members, key=lambda m: m.org):
        for stream in hub_member_streams(
            member, hub_domain=ctx.settings.hub_domain, replicas=replicas
        ):
            await ctx.bus.ensure_stream(stream)
    await ctx.bus.ensure_stream(
        router_stream(sorted(members, key=lambda m: m.org), replicas=replicas)
    )


async def replicate_organisation(
    ctx: ServiceContext, event: CloudEvent, record: OrganisationPublished, delivery: Delivery
) -> None:
    """On every other node: apply the hub's broadcast if it is newer than the replica's."""
    if delivery.sender != ctx.settings.hub_org:
        raise Forbidden(f"directory records come from the hub, not from {delivery.sender}")
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SCHEMA, "directory.replica", event.id):
            return
        current = await store.get_organisation(conn, record.org_id)
        if domain.should_apply(current.version if current else None, record):
            await store.save_organisation(conn, record)


async def probe(ctx: ServiceContext, org_id: str) -> str:
    """Send a probe to another organisation's node; its answer records the round trip."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await store.get_organisation(conn, org_id) is None:
            raise NotFound(f"no organisation {org_id} in the directory", field="org_id")
        payload = LinkProbed(probe_id=secrets.token_hex(8), sent_at=datetime.now(UTC))
        await store.record_probe(conn, org_id, payload.probe_id, payload.sent_at)
        subject = registry.for_payload(LinkProbed).subject(
            sender=ctx.settings.org, recipient=org_id
        )
        await outbox.add(conn, SCHEMA, subject, make_event(payload, source=ctx.source))
    return payload.probe_id


async def answer_probe(
    ctx: ServiceContext, event: CloudEvent, probe: LinkProbed, delivery: Delivery
) -> None:
    """A probe arrived: answer it, once."""
    sender = delivery.sender
    assert sender is not None
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SCHEMA, "directory.probe", event.id):
            return
        answer = LinkAnswered(
            probe_id=probe.probe_id, probed_at=probe.sent_at, answered_at=datetime.now(UTC)
        )
        subject = registry.for_payload(LinkAnswered).subject(
            sender=ctx.settings.org, recipient=sender
        )
        await outbox.add(conn, SCHEMA, subject, make_event(answer, source=ctx.source))


async def record_answer(
    ctx: ServiceContext, event: CloudEvent, answer: LinkAnswered, delivery: Delivery
) -> None:
    """An answer came back: record the round trip of the probe it answers."""
    sender = delivery.sender
    assert sender is not None
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await processed.first_time(conn, SCHEMA, "directory.answer", event.id):
            return
        probed_at = await store.get_probe(conn, sender, answer.probe_id)
        if probed_at is None:
            return  # an answer to a probe superseded by a newer one
        result = domain.round_trip(answer.probe_id, probed_at, datetime.now(UTC))
        await store.record_answer(
            conn, sender, answer.probe_id, datetime.now(UTC), result.round_trip_ms
        )
