"""Envelopes made by hand, as a hostile or mistaken node would make them, and put into a real
node's outbox so that they cross the real federation: the tests of tampering and of revoked
keys build theirs here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.referrals import envelope
from shared import outbox
from shared.contracts.referrals import Header, LegalBasis, ReferralOffered, Urgency
from shared.crypto import NodeKeys, key_id
from shared.events import make_event, new_event_id
from tests.e2e.conftest import client

Creds = dict[str, Any]


async def recipient_key(creds: Creds, sender: str, recipient: str) -> dict[str, Any]:
    """The recipient's encryption key, as the sender's directory lists it."""
    async with client(creds, sender, "admin") as api:
        record = (await api.get(f"/api/v1/directory/organisations/{recipient}")).json()
    return next(k for k in record["keys"] if k["use"] == "x25519")


def header(sender: str, recipient: str, keys: NodeKeys, sealed_for: dict[str, Any]) -> Header:
    """A routine referral's header from ``sender`` to ``recipient``, naming ``keys`` as the
    sender's and ``sealed_for`` as the recipient's."""
    now = datetime.now(UTC)
    return Header(
        referral_id=new_event_id(),
        from_org=sender,
        to_org=recipient,
        category="primary_health",
        urgency=Urgency.ROUTINE,
        legal_basis=LegalBasis.VITAL_INTEREST,
        created_at=now,
        acknowledge_by=now + timedelta(days=3),
        answer_by=now + timedelta(days=7),
        sender_key_id=key_id(keys.signing_public),
        recipient_key_id=sealed_for["key_id"],
        sender_encryption_key_id=key_id(keys.encryption_public),
    )


def seal(
    header: Header, person: dict[str, Any], keys: NodeKeys, sealed_for: dict[str, Any]
) -> ReferralOffered:
    """An honest envelope of ``person`` under ``header``, signed with ``keys``."""
    return envelope.seal(
        header,
        person,
        keys=keys,
        recipient_public=sealed_for["public_key"],
        sender_public=envelope.b64(keys.encryption_public),
    )


async def send_through_outbox(creds: Creds, offer: ReferralOffered) -> str:
    """Put ``offer`` into its sender's real outbox, as the referrals service would; its
    referral id."""
    sender, recipient = offer.header.from_org, offer.header.to_org
    event = make_event(
        offer, source=f"relais://{sender}/referrals", subject=offer.header.referral_id
    )
    conn = await asyncpg.connect(creds["nodes"][sender]["database_url"])
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        async with conn.transaction():
            subject = f"relais.net.{sender}.{recipient}.referral.offered"
            await outbox.add(conn, "referrals", subject, event)
    finally:
        await conn.close()
    return offer.header.referral_id


async def forge_message(
    creds: Creds, keys: NodeKeys, sender: str, recipient: str, referral_id: str, text: str
) -> str:
    """A message of ``sender`` (whose node's keys are ``keys``) on ``referral_id``, kept in
    its writer's thread as ``write_message`` keeps it, but put into its real outbox with a
    signature over other words (a node that changed the text after signing it): its id."""
    conn = await asyncpg.connect(creds["nodes"][sender]["database_url"])
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT sealed_key, sealed_for FROM referrals.referrals WHERE referral_id = $1",
                referral_id,
            )
            assert row is not None, f"{referral_id} is not at {sender}"
            private = keys.encryption_key(row["sealed_for"] or "") or keys.encryption
            data_key = envelope.data_key(row["sealed_key"], private)
            message_id = new_event_id()
            now = datetime.now(UTC)

            def told(words: str) -> Any:
                return envelope.sign_message(
                    keys,
                    {
                        "referral_id": referral_id,
                        "message_id": message_id,
                        "by_org": sender,
                        "by_role": "caseworker",
                        "at": now.isoformat(),
                        "sealed_text": envelope.seal_message(
                            data_key,
                            words,
                            referral_id=referral_id,
                            message_id=message_id,
                            by_org=sender,
                        ),
                        "sender_key_id": key_id(keys.signing_public),
                    },
                )

            honest, other = told(text), told(text + " (changed)")
            forged = honest.model_copy(update={"signature": other.signature})
            await conn.execute(
                "INSERT INTO referrals.messages (message_id, referral_id, by_org, by_role,"
                " by_actor, at, sealed_text, sender_key_id, signature)"
                " VALUES ($1, $2, $3, 'caseworker', 'forger', $4, $5, $6, $7)",
                message_id,
                referral_id,
                sender,
                forged.at,
                forged.sealed_text,
                forged.sender_key_id,
                forged.signature,
            )
            event = make_event(forged, source=f"relais://{sender}/referrals", subject=referral_id)
            subject = f"relais.net.{sender}.{recipient}.referral.messaged"
            await outbox.add(conn, "referrals", subject, event)
    finally:
        await conn.close()
    return message_id
