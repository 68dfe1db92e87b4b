"""The node's audit chain on a real PostgreSQL: one unbroken chain under concurrent writers,
append-only for the service's role and for everyone through the trigger, and every kind of
tampering found and named by verification."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
from datetime import UTC
from pathlib import Path

import asyncpg
import pytest

from services.audit import handlers, store, verification
from services.audit.domain import GENESIS, Checkpoint, Draft, Problem
from shared.contracts.audit import checkpoint_document
from shared.crypto import NodeKeys
from shared.service import ServiceContext
from tests.integration.audit_fixtures import audit_ctx, drafts, tamper

__all__ = ["audit_ctx"]


async def verify(ctx: ServiceContext, checkpoints: list[Checkpoint] | None = None):  # type: ignore[no-untyped-def]
    audit = await handlers.audit_of(ctx)
    async with audit.writer.acquire() as conn:
        return await verification.verify(conn, checkpoints or [])


class TestAppending:
    async def test_records_are_numbered_without_gaps_and_each_follows_the_previous(
        self, audit_ctx: ServiceContext
    ) -> None:
        entries = await handlers.append(audit_ctx, drafts(5))
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
        report = await verify(audit_ctx)
        assert (report.ok, report.checked, report.last_seq) == (True, 5, 5)

    async def test_a_record_delivered_twice_is_chained_once(
        self, audit_ctx: ServiceContext
    ) -> None:
        batch = drafts(3)
        await handlers.append(audit_ctx, batch)
        assert await handlers.append(audit_ctx, batch[1:]) == []
        assert (await verify(audit_ctx)).last_seq == 3

    async def test_concurrent_writers_make_one_unbroken_chain(
        self, audit_ctx: ServiceContext
    ) -> None:
        async def writer(n: int) -> None:
            for i in range(25):
                await handlers.append(audit_ctx, drafts(1, start=n * 100 + i))

        await asyncio.gather(*(writer(n) for n in range(6)))
        report = await verify(audit_ctx)
        assert (report.ok, report.checked) == (True, 150)


class TestAppendOnly:
    async def test_the_audit_role_cannot_update_delete_or_truncate(
        self, audit_ctx: ServiceContext
    ) -> None:
        await handlers.append(audit_ctx, drafts(2))
        audit = await handlers.audit_of(audit_ctx)
        async with audit.writer.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") == store.WRITER_ROLE
            for statement in (
                "UPDATE audit.entry SET actor = 'user:someone_else' WHERE seq = 1",
                "DELETE FROM audit.entry WHERE seq = 2",
                "TRUNCATE audit.entry",
                "UPDATE audit.checkpoint SET hash = 'x'",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await conn.execute(statement)
        assert (await verify(audit_ctx)).ok

    async def test_the_trigger_refuses_changes_even_to_the_tables_owner(
        self, audit_ctx: ServiceContext
    ) -> None:
        await handlers.append(audit_ctx, drafts(2))
        async with audit_ctx.pool.acquire() as conn:
            for statement in (
                "UPDATE audit.entry SET outcome = 'refused' WHERE seq = 1",
                "DELETE FROM audit.entry WHERE seq = 2",
                "TRUNCATE audit.entry",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await conn.execute(statement)
        assert (await verify(audit_ctx)).checked == 2


class TestTamperingIsFoundAndNamed:
    @pytest.fixture(autouse=True)
    async def ten_records(self, audit_ctx: ServiceContext) -> None:
        await handlers.append(audit_ctx, drafts(10))

    async def test_a_modified_record(self, audit_ctx: ServiceContext, database_url: str) -> None:
        await tamper(database_url, "UPDATE audit.entry SET actor = 'user:nobody' WHERE seq = 4")
        report = await verify(audit_ctx)
        assert not report.ok and report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.MODIFIED, 4)
        assert "record 4 was modified" in report.finding.detail

    async def test_a_deleted_record(self, audit_ctx: ServiceContext, database_url: str) -> None:
        await tamper(database_url, "DELETE FROM audit.entry WHERE seq = 6")
        report = await verify(audit_ctx)
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.DELETED, 6)

    async def test_a_deleted_record_with_the_rest_renumbered(
        self, audit_ctx: ServiceContext, database_url: str
    ) -> None:
        await tamper(
            database_url,
            "DELETE FROM audit.entry WHERE seq = 6",
            "UPDATE audit.entry SET seq = seq - 1 WHERE seq > 6",
        )
        report = await verify(audit_ctx)
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.DELETED, 6)

    async def test_an_inserted_record(self, audit_ctx: ServiceContext, database_url: str) -> None:
        await tamper(
            database_url,
            "UPDATE audit.entry SET seq = seq + 1000 WHERE seq >= 3",
            "UPDATE audit.entry SET seq = seq - 999 WHERE seq > 1000",
            "INSERT INTO audit.entry SELECT 3, at, service, actor_org, 'user:intruder', action,"
            " object, digest, outcome, gen_random_uuid(), prev_hash, md5('x') || md5('y')"
            " FROM audit.entry WHERE seq = 4",
        )
        report = await verify(audit_ctx)
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.INSERTED, 3)

    async def test_reordered_records(self, audit_ctx: ServiceContext, database_url: str) -> None:
        await tamper(
            database_url,
            "UPDATE audit.entry SET seq = 100 WHERE seq = 5",
            "UPDATE audit.entry SET seq = 5 WHERE seq = 6",
            "UPDATE audit.entry SET seq = 6 WHERE seq = 100",
        )
        report = await verify(audit_ctx)
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.REORDERED, 5)
        assert report.finding.original_seq == 6

    async def test_records_cut_off_the_end(
        self, audit_ctx: ServiceContext, database_url: str
    ) -> None:
        async with (await handlers.audit_of(audit_ctx)).writer.acquire() as conn:
            head = await store.head(conn)
        checkpoint = Checkpoint(head.seq, head.hash, drafts(1)[0].at)
        assert (await verify(audit_ctx, [checkpoint])).ok
        await tamper(database_url, "DELETE FROM audit.entry WHERE seq > 7")
        report = await verify(audit_ctx, [checkpoint])
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.TRUNCATED, 8)

    async def test_a_rewritten_chain_is_caught_by_its_checkpoint(
        self, audit_ctx: ServiceContext, database_url: str
    ) -> None:
        async with (await handlers.audit_of(audit_ctx)).writer.acquire() as conn:
            head = await store.head(conn)
        checkpoint = Checkpoint(head.seq, head.hash, drafts(1)[0].at)
        # Someone who knows the rule removes the last record and chains a new one in its place.
        await tamper(database_url, "DELETE FROM audit.entry WHERE seq = 10")
        await handlers.append(audit_ctx, drafts(1, start=50))
        assert (await verify(audit_ctx)).ok  # the chain alone looks fine...
        report = await verify(audit_ctx, [checkpoint])  # ...its signed checkpoint does not
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.REWRITTEN, 10)


def _old_hash(seq: int, draft: Draft, prev_hash: str) -> str:
    """A record's hash as the audit service made it before RFC 8785 (Python's sorted JSON)."""
    fields = {
        "seq": seq,
        "at": draft.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": draft.service,
        "actor_org": draft.actor_org,
        "actor": draft.actor,
        "action": draft.action,
        "object": draft.object,
        "digest": draft.digest,
        "outcome": draft.outcome,
        "event_id": draft.event_id,
        "prev_hash": prev_hash,
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _old_signature(keys: NodeKeys, document: object) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(keys.signing.sign(text.encode()).signature).decode()


class TestRecordsFromBeforeRfc8785:
    async def chain_old_records(self, ctx: ServiceContext, count: int) -> str:
        """Records written as the audit service wrote them then, by its INSERT of the time."""
        audit = await handlers.audit_of(ctx)
        prev = GENESIS
        async with audit.writer.acquire() as conn:
            for seq, draft in enumerate(drafts(count, actor="user:أمينة"), start=1):
                digest = _old_hash(seq, draft, prev)
                await conn.execute(
                    "INSERT INTO audit.entry (seq, at, service, actor_org, actor, action, object,"
                    " digest, outcome, event_id, prev_hash, hash)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    seq,
                    draft.at,
                    draft.service,
                    draft.actor_org,
                    draft.actor,
                    draft.action,
                    draft.object,
                    draft.digest,
                    draft.outcome,
                    draft.event_id,
                    prev,
                    digest,
                )
                prev = digest
        return prev

    async def test_an_old_chain_verifies_and_new_records_follow_it_in_rfc_8785(
        self, audit_ctx: ServiceContext, tmp_path: Path
    ) -> None:
        old_head = await self.chain_old_records(audit_ctx, 3)
        new = await handlers.append(audit_ctx, drafts(2, start=10))
        assert new[0].prev_hash == old_head
        audit = await handlers.audit_of(audit_ctx)
        async with audit.writer.acquire() as conn:
            forms = [
                r["canon"] for r in await conn.fetch("SELECT canon FROM audit.entry ORDER BY seq")
            ]
        assert forms == ["legacy"] * 3 + ["rfc8785"] * 2
        # A checkpoint signed then (bare base64 over the old form) and one signed now.
        keys = NodeKeys.load_or_create(tmp_path)
        public = {key["key_id"]: key["public_key"] for key in keys.public_keys()}
        at = drafts(1)[0].at
        old_document = checkpoint_document("sanad", "sanad", 3, old_head, at)
        new_document = checkpoint_document("sanad", "sanad", 5, new[-1].hash, at)
        key_id, new_signature = keys.sign(new_document)
        rows = [
            store.StoredCheckpoint(3, old_head, at, key_id, _old_signature(keys, old_document)),
            store.StoredCheckpoint(5, new[-1].hash, at, key_id, new_signature),
        ]
        points = verification.signed_checkpoints(
            rows, org="sanad", node_id="sanad", public_keys=public
        )
        assert [p.signed for p in points] == [True, True]
        report = await verify(audit_ctx, points)
        assert (report.ok, report.checked, report.last_seq) == (True, 5, 5)

    async def test_a_tampered_old_record_is_still_found(
        self, audit_ctx: ServiceContext, database_url: str
    ) -> None:
        await self.chain_old_records(audit_ctx, 3)
        await handlers.append(audit_ctx, drafts(2, start=10))
        await tamper(database_url, "UPDATE audit.entry SET outcome = 'refused' WHERE seq = 2")
        report = await verify(audit_ctx)
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.MODIFIED, 2)

    async def test_relabelling_a_record_s_form_is_found(
        self, audit_ctx: ServiceContext, database_url: str
    ) -> None:
        await self.chain_old_records(audit_ctx, 2)
        await handlers.append(audit_ctx, drafts(2, start=10))
        await tamper(database_url, "UPDATE audit.entry SET canon = 'legacy' WHERE seq = 3")
        report = await verify(audit_ctx)
        assert report.finding is not None
        assert (report.finding.problem, report.finding.seq) == (Problem.MODIFIED, 3)
