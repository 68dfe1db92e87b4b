"""Reading the person's data: decrypted on this node for an authorised person, and audited."""

from __future__ import annotations

from typing import Any

from services.referrals import envelope, store
from services.referrals.handlers.common import (
    actor_of,
    audit,
    check_caller,
    data_key,
    load,
)
from shared.auth import Principal
from shared.contracts.audit import Outcome
from shared.errors import Conflict
from shared.service import ServiceContext


async def read_payload(
    ctx: ServiceContext, principal: Principal, referral_id: str
) -> dict[str, Any]:
    """Decrypt a referral's payload (and its notes) for an authorised person; audited."""
    check_caller(ctx, principal)
    async with ctx.pool.acquire() as conn:
        referral = await load(conn, referral_id)
        try:
            key = data_key(ctx, referral)
        except Conflict:  # erased: the attempt is recorded all the same
            async with conn.transaction():
                await audit(
                    ctx,
                    conn,
                    actor_of(principal),
                    "payload_read",
                    referral_id,
                    outcome=Outcome.REFUSED,
                )
            raise
    async with ctx.pool.acquire() as conn, conn.transaction():
        assert referral.nonce is not None and referral.ciphertext is not None
        payload = envelope.open_payload(referral.header, referral.nonce, referral.ciphertext, key)
        notes = []
        for entry in await store.history(conn, referral_id):
            if entry.sealed_note and entry.status is not None:
                text = envelope.open_note(
                    key,
                    entry.sealed_note,
                    referral_id=referral_id,
                    status=entry.status.value,
                    by_org=entry.by_org,
                )
                notes.append(
                    {
                        "status": entry.status.value,
                        "at": entry.at.isoformat(),
                        "by_org": entry.by_org,
                        "note": text,
                    }
                )
        # The read is recorded with the data it showed (its digest), in the same transaction.
        await audit(
            ctx, conn, actor_of(principal), "payload_read", referral_id, {"payload": payload}
        )
    return {"referral_id": referral_id, "payload": payload, "notes": notes}
