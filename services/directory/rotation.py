"""Rotating an organisation's key pairs (``relais node rotate-keys``), on its own node.

The next X25519 and Ed25519 pairs are made in the node's key folder, beside the current one
(shared/crypto.py); the organisation's record, with the new keys valid from now and the old
ones until the end of an overlap (or from now, revoked, after a compromise), goes to the hub
as the organisation's own change, signed with the current key, through the directory's
outbox. Once the hub publishes it, the node's replica takes the new pair up and signs with it
(``handlers.take_up_keys``); the senders seal for the new key as soon as they see it. The old
private keys stay in the folder's ``retired/`` to open what was sealed for them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from services.directory import domain, store
from shared import audit_trail, crypto, outbox
from shared.contracts.directory import OrganisationChangeRequested, PublicKey
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.events import make_event, registry

SCHEMA = store.SCHEMA
ACTOR = "cli:rotate-keys"


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
        fresh = [
            PublicKey.model_validate(k).model_copy(update={"valid_from": now})
            for k in crypto.make_next_pair(folder)
        ]
        held = {k.key_id for k in current.keys}
        if all(k.key_id in held for k in fresh):
            raise Conflict("the new keys are already published", field="keys")
        ends = now if revoke else now + overlap
        ended = [
            k
            if k.valid_until is not None and k.valid_until <= ends
            else k.model_copy(update={"valid_until": ends})
            for k in current.keys
        ]
        proposed = current.model_copy(
            update={"keys": ended + fresh, "version": current.version + 1}
        )
        checked = domain.own_change(current, proposed)  # refused here what the hub would refuse
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
