"""The audit chain's rules without a database: hashing, what verification calls a broken
chain, and how the figures hide small counts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785

from services.audit import domain
from services.audit.domain import Anchor, Checkpoint, Draft, Entry, Problem, Verifier

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def chain_of(count: int) -> list[Entry]:
    entries: list[Entry] = []
    prev = domain.GENESIS
    for i in range(count):
        draft = Draft(
            T0 + timedelta(seconds=i),
            "referrals",
            "sanad",
            "user:focal",
            "payload.read",
            f"referral:{i}",
            "",
            "ok",
            f"00000000-0000-7000-8000-{i:012d}",
        )
        entries.append(domain.chain(draft, seq=i + 1, prev_hash=prev))
        prev = entries[-1].hash
    return entries


class TestHashing:
    def test_every_field_is_covered_by_the_hash(self) -> None:
        entry = chain_of(1)[0]
        changed: dict[str, Any] = {
            "actor": "user:x",
            "outcome": "refused",
            "digest": "a" * 64,
            "at": T0 + timedelta(microseconds=1),
            "service": "auth",
            "seq": 2,
            "prev_hash": "1" * 64,
        }
        for field, value in changed.items():
            assert not replace(entry, **{field: value}).intact, field

    def test_a_time_hashes_the_same_in_any_zone(self) -> None:
        entry = chain_of(1)[0]
        moved = replace(entry, at=entry.at.astimezone(datetime.now().astimezone().tzinfo))
        assert moved.intact


def old_chain_of(count: int) -> list[Entry]:
    """Records as the audit service chained them before RFC 8785: SHA-256 over sorted-key
    JSON (Python's ``json.dumps``) of the fields, no ``canon`` among them."""
    entries: list[Entry] = []
    prev = domain.GENESIS
    for i, made in enumerate(chain_of(count)):
        fields = {
            "seq": i + 1,
            "at": made.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "service": made.service,
            "actor_org": made.actor_org,
            "actor": "user:أمينة",  # beyond ASCII, as names are
            "action": made.action,
            "object": made.object,
            "digest": made.digest,
            "outcome": made.outcome,
            "event_id": made.event_id,
            "prev_hash": prev,
        }
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode()).hexdigest()
        entries.append(
            replace(made, actor="user:أمينة", prev_hash=prev, hash=digest, canon="legacy")
        )
        prev = digest
    return entries


class TestCanonicalForms:
    def test_a_new_record_hashes_its_rfc_8785_form_with_the_form_named(self) -> None:
        entry = chain_of(1)[0]
        assert entry.canon == "rfc8785" and entry.fields()["canon"] == "rfc8785"
        # What an auditor's verifier in any language recomputes from an exported record.
        assert entry.hash == hashlib.sha256(rfc8785.dumps(entry.fields())).hexdigest()

    def test_a_chain_made_before_rfc_8785_still_verifies(self) -> None:
        verifier = Verifier()
        assert all(verifier.feed(e) for e in old_chain_of(4))
        assert verifier.checked == 4

    def test_new_records_follow_old_ones_in_one_chain(self) -> None:
        old = old_chain_of(3)
        draft = Draft(T0, "audit", "sanad", "system:node", "key.created", "key:k", "", "ok", "e")
        new = domain.chain(draft, seq=4, prev_hash=old[-1].hash)
        verifier = Verifier()
        assert all(verifier.feed(e) for e in [*old, new])

    def test_a_tampered_old_record_still_fails(self) -> None:
        entries = old_chain_of(4)
        entries[1] = replace(entries[1], outcome="refused")
        verifier = Verifier()
        assert verifier.feed(entries[0]) and not verifier.feed(entries[1])
        suspect = domain.Suspect(entries[1], 2, entries[0].hash, entries[2], None)
        assert domain.diagnose(suspect).problem is Problem.MODIFIED

    def test_relabelling_the_form_of_a_record_breaks_its_hash(self) -> None:
        old, new = old_chain_of(1)[0], chain_of(1)[0]
        assert not replace(old, canon="rfc8785").intact
        assert not replace(new, canon="legacy").intact
        assert not replace(new, canon="json5").intact  # an unknown form matches nothing


class TestVerifier:
    def test_an_intact_chain_is_checked_to_its_end(self) -> None:
        verifier = Verifier()
        assert all(verifier.feed(e) for e in chain_of(5))
        assert (verifier.checked, verifier.last_seq) == (5, 5)

    def test_a_cut_chain_starts_from_its_anchor(self) -> None:
        entries = chain_of(5)
        verifier = Verifier(anchor=Anchor(2, entries[1].hash))
        assert all(verifier.feed(e) for e in entries[2:])

    def test_a_missing_record_is_called_deleted(self) -> None:
        entries = chain_of(5)
        verifier = Verifier()
        for entry in entries[:2] + entries[3:]:
            if not verifier.feed(entry):
                break
        assert verifier.suspect is not None
        finding = domain.diagnose(
            domain.Suspect(
                verifier.suspect, verifier.expected_seq, verifier.expected_prev, None, None
            )
        )
        assert (finding.problem, finding.seq) == (Problem.DELETED, 3)

    def test_a_checkpoint_beyond_the_last_record_means_the_end_was_cut(self) -> None:
        finding = domain.against_checkpoints({}, 7, [Checkpoint(10, "x" * 64, T0)], Anchor())
        assert finding is not None and (finding.problem, finding.seq, finding.end_seq) == (
            Problem.TRUNCATED,
            8,
            10,
        )

    def test_an_unsigned_checkpoint_is_named(self) -> None:
        finding = domain.against_checkpoints(
            {3: "h"}, 7, [Checkpoint(3, "h", T0, signed=False)], Anchor()
        )
        assert finding is not None and finding.problem is Problem.BAD_CHECKPOINT


class TestFigures:
    def test_counts_from_one_to_four_are_hidden(self) -> None:
        assert [domain.shown(n) for n in (1, 2, 3, 4, 5, 12)] == ["<5", "<5", "<5", "<5", 5, 12]

    def test_zero_is_shown_as_zero(self) -> None:
        assert domain.shown(0) == 0

    def test_a_rate_needs_five_on_both_sides(self) -> None:
        assert domain.rate(4, 100) is None and domain.rate(5, 4) is None
        assert domain.rate(5, 10) == 0.5

    def test_a_rate_of_nothing_is_zero_when_the_whole_is_shown(self) -> None:
        assert domain.rate(0, 12) == 0.0
        assert domain.rate(0, 3) is None  # the whole is hidden: so is its rate

    def test_coverage_counts_open_providers_and_national_services_everywhere(self) -> None:
        records = [
            {
                "org_id": "amal",
                "status": "active",
                "regions": ["oriental"],
                "services": [
                    {"category": "primary_health", "regions": ["oriental"], "capacity": "open"},
                    {"category": "legal_aid", "regions": ["oriental"], "capacity": "closed"},
                ],
            },
            {
                "org_id": "sanad",
                "status": "active",
                "regions": ["rabat_sale_kenitra"],
                "services": [{"category": "legal_aid", "national": True, "capacity": "open"}],
            },
            {
                "org_id": "gone",
                "status": "suspended",
                "services": [{"category": "shelter", "regions": ["oriental"], "capacity": "open"}],
            },
        ]
        by_region = {r["region"]: r["categories"] for r in domain.coverage(records)}
        assert by_region == {
            "oriental": ["legal_aid", "primary_health"],
            "rabat_sale_kenitra": ["legal_aid"],
        }
