"""Re-sealing the data keys this node keeps to its current X25519 key, after a rotation
(``relais node reseal``, the admin's keys page), so that the retired private keys can be
destroyed (``relais node forget-retired-keys``).

Each referral's data key is kept sealed for one of the node's keys: the one its signed header
names (the recipient's in the inbox, the sender's own in the outbox), or, once re-sealed, the
one ``sealed_for`` names. A batch takes the next rows sealed for another key than the current
one, opens each data key with the retired key and seals it again for the current one, in one
transaction with an audit record; a batch that fails leaves its rows as they were, and the next
run goes on from what is left (nothing is done twice: a re-sealed row no longer matches). The
payload, its notes and the conversation are under the data key itself: they do not change.
Rows whose key was destroyed (consent revoked, retention) hold nothing to re-seal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nacl.public import SealedBox

from services.referrals import envelope
from shared import audit_trail, crypto
from shared.crypto import NodeKeys, key_id
from shared.db import Connection, Pool
from shared.errors import Conflict

SERVICE = "referrals"
BATCH = 200
# Which of the node's keys a row's data key is sealed for (the expression the index has).
SEALED_FOR = (
    "coalesce(sealed_for, CASE box WHEN 'inbox' THEN header->>'recipient_key_id'"
    " ELSE header->>'sender_encryption_key_id' END)"
)


@dataclass(frozen=True)
class Progress:
    """Where a re-seal stands: rows re-sealed by this run, rows still sealed for another key
    than the current one (by key id), of which the node no longer holds the key of some."""

    resealed: int
    waiting: dict[str, int]
    unopenable: int

    @property
    def left(self) -> int:
        return sum(self.waiting.values())


async def waiting(conn: Connection, current: str) -> dict[str, int]:
    """How many retained data keys are sealed for each key other than ``current``."""
    rows = await conn.fetch(
        f"SELECT {SEALED_FOR} AS key_id, count(*) AS n FROM referrals.referrals"
        f" WHERE sealed_key IS NOT NULL AND {SEALED_FOR} <> $1 GROUP BY 1 ORDER BY 1",
        current,
    )
    return {row["key_id"]: row["n"] for row in rows}


async def reseal_batch(conn: Connection, keys: NodeKeys, *, actor: audit_trail.Actor) -> int:
    """Re-seal the next batch for the current key, audited; how many rows it re-sealed."""
    current = key_id(keys.encryption_public)
    held = [key_id(bytes(k.public_key)) for k in keys.other_encryption]
    box = SealedBox(keys.encryption.public_key)
    async with conn.transaction():
        rows = await conn.fetch(
            f"SELECT referral_id, sealed_key, {SEALED_FOR} AS key_id FROM referrals.referrals"
            f" WHERE sealed_key IS NOT NULL AND {SEALED_FOR} <> $1 AND {SEALED_FOR} = ANY($2)"
            " ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED",
            current,
            held,
            BATCH,
        )
        for row in rows:
            private = keys.encryption_key(row["key_id"])
            assert private is not None  # chosen among the keys held
            data_key = envelope.data_key(row["sealed_key"], private)
            await conn.execute(
                "UPDATE referrals.referrals SET sealed_key = $2, sealed_for = $3"
                " WHERE referral_id = $1",
                row["referral_id"],
                envelope.b64(box.encrypt(data_key)),
                current,
            )
        if rows:
            await audit_trail.record(
                conn,
                SERVICE,
                actor=actor,
                action="node.data_keys_resealed",
                object=f"key:{current}",
                content={
                    "referrals": [str(row["referral_id"]) for row in rows],
                    "from": sorted({row["key_id"] for row in rows}),
                },
            )
    return len(rows)


async def reseal(
    pool: Pool, keys: NodeKeys, *, actor: audit_trail.Actor, batches: int | None = None
) -> Progress:
    """Re-seal batch after batch (at most ``batches``) until none is left that the node can
    open; where it then stands."""
    done, runs = 0, 0
    while batches is None or runs < batches:
        async with pool.acquire() as conn:
            resealed = await reseal_batch(conn, keys, actor=actor)
        done, runs = done + resealed, runs + 1
        if not resealed:
            break
    return await progress(pool, keys, resealed=done)


async def progress(pool: Pool, keys: NodeKeys, *, resealed: int = 0) -> Progress:
    held = {key_id(bytes(k.public_key)) for k in keys.other_encryption}
    async with pool.acquire() as conn:
        left = await waiting(conn, key_id(keys.encryption_public))
    return Progress(resealed, left, sum(n for kid, n in left.items() if kid not in held))


async def check_forgettable(
    conn: Connection, retired: set[str], valid_until: dict[str, datetime | None], now: datetime
) -> None:
    """``Conflict`` while anything still needs one of the ``retired`` X25519 keys: a retained
    data key sealed for it (re-seal first), or the directory still publishing it as valid
    (``valid_until``: what the organisation's record says of each), so that a sender may still
    seal an envelope for it."""
    still = {kid: n for kid, n in (await waiting(conn, "")).items() if kid in retired}
    if still:
        raise Conflict(
            f"{sum(still.values())} retained data keys are still sealed for a retired key:"
            " re-seal them first (relais node reseal)",
            field="keys",
        )
    for kid in sorted(retired):
        until = valid_until.get(kid)
        if kid in valid_until and (until is None or until > now):
            ends = "without end" if until is None else f"until {until.isoformat()}"
            raise Conflict(
                f"the directory still publishes key {kid} as valid ({ends}): a sender may"
                " still seal for it",
                field="keys",
            )


async def forget_retired(
    conn: Connection,
    folder: Path,
    valid_until: dict[str, datetime | None],
    *,
    actor: audit_trail.Actor,
    org: str,
    now: datetime,
) -> list[str]:
    """Destroy the retired private keys of ``folder`` once nothing needs them
    (``check_forgettable``; ``valid_until``: the organisation's record), audited; the key ids
    destroyed (none: nothing was left, nothing audited). ``relais node forget-retired-keys``
    and the admin's keys page."""
    async with conn.transaction():
        # Held for the check and the audit record: a re-seal cannot run meanwhile, and no key
        # goes while a row may still be sealed for it.
        await conn.execute("LOCK TABLE referrals.referrals IN SHARE MODE")
        retired = crypto.retired_encryption_keys(folder)
        await check_forgettable(conn, set(retired), valid_until, now)
        forgotten = crypto.forget_retired(folder)
        if forgotten:
            await audit_trail.record(
                conn,
                SERVICE,
                actor=actor,
                action="node.retired_keys_forgotten",
                object=f"organisation:{org}",
                content={"keys": forgotten},
            )
    return forgotten
