"""Retention: archive the oldest records to a file and prune them from the table, cutting at a
signed checkpoint, so that the chain left behind still verifies from that checkpoint."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.audit import store, verification
from services.audit.domain import Anchor, Draft
from shared.audit_trail import digest
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.events import new_event_id


@dataclass(frozen=True)
class Pruned:
    cut: Anchor
    archived: int
    archive: Path


async def prune(
    conn: Connection, *, org: str, node_id: str, before: datetime, archive_dir: Path
) -> Pruned:
    """Archive and delete the records up to the last checkpoint signed before ``before``.

    Refused if the chain does not verify (a broken chain is evidence: it is not pruned), or if
    no checkpoint was signed before that time.
    """
    checkpoints = [c for c in await store.own_checkpoints(conn) if c.at < before]
    start = await store.anchor(conn)
    checkpoints = [c for c in checkpoints if c.seq > start.seq]
    if not checkpoints:
        raise NotFound(
            f"no checkpoint signed before {before.isoformat()} to cut at", field="before"
        )
    cut = checkpoints[-1]
    keys = await verification.node_keys(conn, org)
    points = verification.signed_checkpoints(
        await store.own_checkpoints(conn), org=org, node_id=node_id, public_keys=keys or None
    )
    report = await verification.verify(conn, points)
    if not report.ok:
        assert report.finding is not None
        raise Conflict(f"the chain does not verify: {report.finding.detail}", field="chain")
    await asyncio.to_thread(archive_dir.mkdir, parents=True, exist_ok=True)
    path = archive_dir / f"audit-{node_id}-{start.seq + 1:012d}-{cut.seq:012d}.ndjson"
    count = 0
    with path.open("x", encoding="utf-8") as out:
        header = {
            "archive": "relais-audit",
            "org": org,
            "node_id": node_id,
            "after": {"seq": start.seq, "hash": start.hash},
            "checkpoint": {
                "seq": cut.seq,
                "hash": cut.hash,
                "at": cut.at.isoformat(),
                "key_id": cut.key_id,
                "signature": cut.signature,
            },
        }
        out.write(json.dumps(header) + "\n")
        async for batch in store.entries_from(conn, start.seq):
            for entry in batch:
                if entry.seq > cut.seq:
                    break
                item = {**entry.fields(), "hash": entry.hash}
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
                count += 1
            if batch[-1].seq >= cut.seq:
                break
        out.flush()
        os.fsync(out.fileno())
    anchor = Anchor(cut.seq, cut.hash)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", store.CHAIN_LOCK)
        await store.add_cut(conn, anchor, str(path))
        await store.prune_to(conn, cut.seq)
        await store.append(
            conn,
            [
                Draft(
                    at=datetime.now(UTC),
                    service="audit",
                    actor_org=org,
                    actor="system:retention",
                    action="audit.pruned",
                    object=f"audit:{node_id}",
                    digest=digest(header),
                    outcome="ok",
                    event_id=new_event_id(),
                )
            ],
        )
    return Pruned(anchor, count, path)
