"""Verifying a node's chain in its database: recompute every hash in order, name the first
record that breaks the chain, then hold the chain against its signed checkpoints (the node's
own, and the hub's copies when the caller has them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.audit import store
from services.audit.domain import Anchor, Checkpoint, Finding, Suspect, Verifier, diagnose
from services.audit.domain import against_checkpoints as held_against
from shared import crypto
from shared.contracts.audit import checkpoint_document
from shared.db import Connection
from shared.errors import Forbidden

Progress = Callable[[int, int], None]  # (records checked, records in all)


@dataclass(frozen=True)
class Report:
    ok: bool
    checked: int
    first_seq: int
    last_seq: int
    checkpoints: int
    finding: Finding | None = None
    anchor: Anchor = field(default_factory=Anchor)

    def as_json(self) -> dict[str, Any]:
        finding = None
        if self.finding is not None:
            finding = {
                "problem": self.finding.problem.value,
                "seq": self.finding.seq,
                "detail": self.finding.detail,
                "original_seq": self.finding.original_seq,
                "end_seq": self.finding.end_seq,
            }
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoints": self.checkpoints,
            "anchor": {"seq": self.anchor.seq, "hash": self.anchor.hash},
            "finding": finding,
        }


def signed_checkpoints(
    rows: Iterable[store.StoredCheckpoint],
    *,
    org: str,
    node_id: str,
    public_keys: Mapping[str, str] | None,
) -> list[Checkpoint]:
    """Checkpoints as verification uses them, each marked by whether its signature holds
    under the node's key of its ``key_id`` (``public_keys`` None: already checked by whoever
    hands them over, the hub)."""
    result = []
    for row in rows:
        signed = True
        if public_keys is not None:
            document = checkpoint_document(org, node_id, row.seq, row.hash, row.at)
            key = public_keys.get(row.key_id)
            try:
                if key is None:
                    raise Forbidden(f"unknown key {row.key_id}")
                crypto.verify(document, row.signature, key)
            except Forbidden:
                signed = False
        result.append(Checkpoint(row.seq, row.hash, row.at, signed))
    return result


async def verify(
    conn: Connection, checkpoints: Iterable[Checkpoint], progress: Progress | None = None
) -> Report:
    """Check the chain in ``conn``'s database against ``checkpoints``."""
    points = list(checkpoints)
    wanted = {c.seq for c in points}
    start = await store.anchor(conn)
    total = await store.count_after(conn, start.seq)
    verifier = Verifier(anchor=start)
    hashes: dict[int, str] = {start.seq: start.hash}
    first_seq: int | None = None
    async for batch in store.entries_from(conn, start.seq):
        for index, entry in enumerate(batch):
            if first_seq is None:
                first_seq = entry.seq
            if not verifier.feed(entry):
                following = batch[index + 1] if index + 1 < len(batch) else None
                if following is None:
                    following = await _next_after(conn, entry.seq)
                finding = diagnose(
                    Suspect(
                        entry=entry,
                        expected_seq=verifier.expected_seq,
                        expected_prev=verifier.expected_prev,
                        following=following,
                        prev_points_to=(
                            start.seq
                            if entry.prev_hash == start.hash
                            else await store.seq_of_hash(conn, entry.prev_hash)
                        ),
                    )
                )
                return Report(
                    False,
                    verifier.checked,
                    first_seq,
                    verifier.last_seq,
                    len(points),
                    finding,
                    start,
                )
            if entry.seq in wanted:
                hashes[entry.seq] = entry.hash
        if progress is not None:
            progress(verifier.checked, total)
    held = held_against(hashes, verifier.last_seq, points, start)
    return Report(
        held is None,
        verifier.checked,
        first_seq or start.seq,
        verifier.last_seq,
        len(points),
        held,
        start,
    )


async def _next_after(conn: Connection, seq: int) -> Any:
    async for batch in store.entries_from(conn, seq, chunk=1):
        return batch[0]
    return None


async def node_keys(conn: Connection, org: str) -> dict[str, str]:
    """The Ed25519 keys of ``org`` as the node's directory replica publishes them."""
    record = await conn.fetchval("SELECT record FROM directory.organisation WHERE org_id = $1", org)
    if not record:
        return {}
    return {k["key_id"]: k["public_key"] for k in record.get("keys", []) if k["use"] == "ed25519"}
