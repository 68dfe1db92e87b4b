"""Rotating an organisation's key pairs (``relais node rotate-keys``), on its own node.

The next X25519 and Ed25519 pairs are made in the node's key folder, beside the current one
(shared/crypto.py); the organisation's record, with the new keys valid from now and the old
ones until the end of an overlap (or from now, revoked, after a compromise), goes to the hub
as the organisation's own change, signed with the current key, through the directory's
outbox. Once the hub publishes it, the node's replica takes the new pair up and signs with it
(``handlers.take_up_keys``); the senders seal for the new key as soon as they see it. The old
private keys stay in the folder's ``retired/`` to open what was sealed for them. The hub's own
keys (the secretariat's: its audit checkpoints) rotate the same way, published at once there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from services.directory import domain, handlers, store
from shared import audit_trail, crypto, outbox
from shared.contracts.directory import (
    OrganisationChangeRequested,
    OrganisationPublished,
    PublicKey,
)
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.events import make_event, registry
from shared.service import ServiceContext

SCHEMA = store.SCHEMA
ACTOR = "cli:rotate-keys"


def rotated(
    current: OrganisationPublished, folder: Path, *, now: datetime, ends: datetime
) -> OrganisationPublished:
    """The organisation's next record: the next pair of ``folder`` (made if it is not there
    yet) valid from ``now``, and the keys it replaces ending at ``ends``, checked as an own
    change. ``Conflict`` if the next pair is already published."""
    fresh = [
        PublicKey.model_validate(k).model_copy(update={"valid_from": now})
        for k in crypto.make_next_pair(folder)
    ]
    held = {k.key_id for k in current.keys}
    if all(k.key_id in held for k in fresh):
        raise Conflict("the new keys are already published", field="keys")
    ended = [
        k
        if k.valid_until is not None and k.valid_until <= ends
        else k.model_copy(update={"valid_until": ends})
        for k in current.keys
    ]
    proposed = current.model_copy(update={"keys": ended + fresh, "version": current.version + 1})
    return domain.own_change(current, proposed)


async def rotate_on_the_hub(
    ctx: ServiceContext,
    folder: Path,
    *,
    now: datetime,
    overlap: timedelta,
    revoke: bool,
    actor: audit_trail.Actor,
) -> list[PublicKey]:
    """On the hub: the secretariat's own record is published here, so its rotation needs no
    request to wait for. The record with the next pair is published (broadcast to every node,
    audited) and the hub signs with the new pair at once."""

    async with ctx.pool.acquire() as conn:
        held = await store.get_organisation(conn, ctx.settings.org)
    ring = ctx.keys if isinstance(ctx.keys, crypto.KeyRing) else None
    if held is not None and ring is not None and ring.take_up({k.key_id for k in held.keys}):
        return held.keys  # published before the hub stopped, not taken up: done now

    def change(current: OrganisationPublished | None) -> OrganisationPublished:
        if current is None:
            raise NotFound(f"{ctx.settings.org} is not in the directory yet", field="org_id")
        return rotated(current, folder, now=now, ends=now if revoke else now + overlap)

    published = await handlers.publish_own_record(
        ctx,
        change,
        actor=actor,
        action="organisation.keys_revoked" if revoke else "organisation.keys_rotated",
    )
    handlers.take_up_keys(ctx, published)
    return published.keys


async def request_rotation(
    conn: Connection,
    folder: Path,
    *,
    org: str,
    hub_org: str,
    node_id: str,
    now: datetime,
    overlap: timedelta,
    revoke: bool = False,
    actor: audit_trail.Actor | None = None,
) -> list[PublicKey]:
    """Make the next pair (kept if a rotation is already waiting) and send the hub the signed
    record that publishes it; the record's keys as proposed. ``NotFound`` before the node has
    its record, ``Conflict`` if the new pair is already published, ``Forbidden`` if the
    organisation may not change its record (suspended)."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"directory.rotation.{org}"
        )
        current = await store.get_organisation(conn, org)
        if current is None:
            raise NotFound(f"{org} is not in this node's directory yet", field="org_id")
        # Refused here what the hub would refuse.
        checked = rotated(current, folder, now=now, ends=now if revoke else now + overlap)
        record = checked.model_dump(mode="json")
        key_id, signature = crypto.NodeKeys.load_or_create(folder).sign(record)
        request = OrganisationChangeRequested(record=checked, key_id=key_id, signature=signature)
        subject = registry.for_payload(OrganisationChangeRequested).subject(
            sender=org, recipient=hub_org
        )
        event = make_event(request, source=f"relais://{node_id}/{SCHEMA}")
        requested_by = ACTOR if actor is None else actor.name
        actor = actor or audit_trail.system(org, ACTOR)
        await store.record_change_request(conn, org, checked.version, requested_by)
        await outbox.add(conn, SCHEMA, subject, event)
        await audit_trail.record(
            conn,
            SCHEMA,
            actor=actor,
            action="organisation.keys_revoked" if revoke else "organisation.keys_rotated",
            object=f"organisation:{org}",
            content={"keys": [k.model_dump(mode="json") for k in checked.keys]},
        )
    return checked.keys
