"""The audit chain's rules, pure: how a record is hashed, how a chain is checked and what a
broken one is called, what the secretariat's figures may show.

Each record's hash is SHA-256 over the canonical JSON of every field but the hash itself,
the previous record's hash included; the first record follows ``GENESIS``. The record says
which canonical form (``canon``): RFC 8785 for every record written now, its ``canon`` field
among those hashed; ``legacy`` for those chained before, whose hash covered the other fields
only, in the legacy form (``shared.canonical``). A chain may hold both, old ones first.
Verification walks the records in sequence order and names the first one that breaks the
chain, and what happened to it: modified, deleted, inserted, reordered, or cut off the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared import canonical

GENESIS = "0" * 64
SMALL_COUNT = 5  # counts from 1 to 4 are shown as "<5" in the figures


def timestamp(at: datetime) -> str:
    """The one text form of a time in a hash: UTC, microseconds (PostgreSQL's precision)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Draft:
    """A record before it is chained: what happened, who did it, to what."""

    at: datetime
    service: str
    actor_org: str
    actor: str
    action: str
    object: str
    digest: str
    outcome: str
    event_id: str


@dataclass(frozen=True)
class Entry:
    """A chained record."""

    seq: int
    at: datetime
    service: str
    actor_org: str
    actor: str
    action: str
    object: str
    digest: str
    outcome: str
    event_id: str
    prev_hash: str
    hash: str
    canon: str = canonical.LEGACY  # the form hashed: the column's value for older records

    def fields(self) -> dict[str, Any]:
        """Every field the hash covers, in their canonical form."""
        covered: dict[str, Any] = {
            "seq": self.seq,
            "at": timestamp(self.at),
            "service": self.service,
            "actor_org": self.actor_org,
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "digest": self.digest,
            "outcome": self.outcome,
            "event_id": str(self.event_id),
            "prev_hash": self.prev_hash,
        }
        if self.canon != canonical.LEGACY:
            covered["canon"] = self.canon  # covered: relabelling a record breaks its hash
        return covered

    def computed_hash(self, *, seq: int | None = None) -> str:
        """The hash these fields give (as if numbered ``seq``, to find where a record was)."""
        fields = self.fields()
        if seq is not None:
            fields["seq"] = seq
        try:
            return hashlib.sha256(canonical.encode(fields, self.canon)).hexdigest()
        except canonical.NotCanonical:
            return ""  # an unknown form written in: no hash matches, the record reads modified

    @property
    def intact(self) -> bool:
        return self.computed_hash() == self.hash

    @classmethod
    def of(cls, row: Any) -> Entry:
        """From a database row (or any mapping) of the same names."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


# The columns of audit.entry, in the order of the record (one list: the store and the queries).
ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def chain(draft: Draft, *, seq: int, prev_hash: str) -> Entry:
    """The record ``draft`` becomes as number ``seq`` after a record hashed ``prev_hash``."""
    entry = Entry(seq=seq, prev_hash=prev_hash, hash="", canon=canonical.CURRENT, **draft.__dict__)
    return replace(entry, hash=entry.computed_hash())


@dataclass(frozen=True)
class Anchor:
    """Where a chain starts: before the first record, or at the cut of a retention prune."""

    seq: int = 0
    hash: str = GENESIS


@dataclass(frozen=True)
class Checkpoint:
    """A signed (sequence number, hash) of a chain's head; ``signed`` once its signature held."""

    seq: int
    hash: str
    at: datetime
    signed: bool = True


class Problem(StrEnum):
    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    REWRITTEN = "rewritten"  # hashes recomputed after a change: a checkpoint no longer matches
    BAD_CHECKPOINT = "bad_checkpoint"  # a checkpoint whose signature does not hold


@dataclass(frozen=True)
class Finding:
    """The first thing wrong with a chain: what, and which record."""

    problem: Problem
    seq: int
    detail: str
    original_seq: int | None = None  # where a reordered record was written
    end_seq: int | None = None  # the last of several records missing


@dataclass(frozen=True)
class Suspect:
    """The first record that does not fit, for ``diagnose``: it, the one after it, and where
    its ``prev_hash`` points (the record whose hash it is), found by the caller."""

    entry: Entry
    expected_seq: int
    expected_prev: str
    following: Entry | None
    prev_points_to: int | None


@dataclass
class Verifier:
    """Checks a chain fed in sequence order; ``suspect`` is set at the first misfit, which
    ``diagnose`` then names. Counts what it has checked, for progress on long chains."""

    anchor: Anchor = Anchor()
    checked: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    suspect: Entry | None = None
    _expected_seq: int = 0
    _prev: str = GENESIS

    def __post_init__(self) -> None:
        self._expected_seq, self._prev = self.anchor.seq + 1, self.anchor.hash
        self.last_seq, self.last_hash = self.anchor.seq, self.anchor.hash

    @property
    def expected_seq(self) -> int:
        return self._expected_seq

    @property
    def expected_prev(self) -> str:
        return self._prev

    def feed(self, entry: Entry) -> bool:
        """Check one more record; False (and ``suspect`` set) if it breaks the chain."""
        if entry.seq != self._expected_seq or entry.prev_hash != self._prev or not entry.intact:
            self.suspect = entry
            return False
        self._expected_seq, self._prev = entry.seq + 1, entry.hash
        self.last_seq, self.last_hash = entry.seq, entry.hash
        self.checked += 1
        return True


def diagnose(suspect: Suspect) -> Finding:
    """Name what happened at the first record that breaks the chain."""
    entry, seq = suspect.entry, suspect.expected_seq
    if entry.seq > seq:
        missing = f"{seq}" if entry.seq == seq + 1 else f"{seq} to {entry.seq - 1}"
        return Finding(
            Problem.DELETED, seq, f"record {missing} is missing: deleted", end_seq=entry.seq - 1
        )
    if entry.seq < seq:  # duplicates cannot happen with a primary key; kept for safety
        return Finding(Problem.INSERTED, entry.seq, f"record {entry.seq} appears twice")
    if entry.intact:
        # Hashed correctly as its own, but not after the record before it: made up, or the
        # record before it was removed and the rest renumbered by someone who knew the rule.
        return Finding(
            Problem.INSERTED,
            seq,
            f"record {seq} does not follow record {seq - 1}: inserted or replaced",
        )
    written_as = _written_as(entry, suspect.prev_points_to)
    following = suspect.following
    if (
        written_as is None
        and following is not None
        and following.computed_hash(seq=following.seq - 1) == following.hash
        and following.prev_hash == suspect.expected_prev
    ):
        return Finding(
            Problem.INSERTED, seq, f"record {seq} was inserted; the ones after it renumbered"
        )
    if written_as is None:
        return Finding(Problem.MODIFIED, seq, f"record {seq} was modified after it was written")
    if written_as == seq + 1 and suspect.prev_points_to is None:
        # Written after a record that is nowhere now: that one was removed.
        return Finding(
            Problem.DELETED, seq, f"record {seq} was deleted; the ones after it renumbered"
        )
    return Finding(
        Problem.REORDERED,
        seq,
        f"record {seq} is out of order: it was written as record {written_as}",
        original_seq=written_as,
    )


def _written_as(entry: Entry, prev_points_to: int | None) -> int | None:
    """The sequence number ``entry`` was hashed with, if it is not its own."""
    candidates = [entry.seq + 1, entry.seq - 1]
    if prev_points_to is not None:
        candidates.insert(0, prev_points_to + 1)
    for candidate in candidates:
        if (
            candidate != entry.seq
            and candidate > 0
            and entry.computed_hash(seq=candidate) == (entry.hash)
        ):
            return candidate
    return None


def against_checkpoints(
    hashes: Mapping[int, str], last_seq: int, checkpoints: Iterable[Checkpoint], anchor: Anchor
) -> Finding | None:
    """Compare a verified chain with its checkpoints: ``hashes`` holds the chain's hash at each
    checkpoint's sequence number, ``last_seq`` is its last record."""
    for checkpoint in sorted(checkpoints, key=lambda c: c.seq):
        if not checkpoint.signed:
            return Finding(
                Problem.BAD_CHECKPOINT,
                checkpoint.seq,
                f"the checkpoint at record {checkpoint.seq} is not signed by this node's key",
            )
        if checkpoint.seq <= anchor.seq:
            if checkpoint.seq == anchor.seq and checkpoint.hash != anchor.hash:
                return Finding(
                    Problem.REWRITTEN,
                    checkpoint.seq,
                    f"the retention cut at record {anchor.seq} differs from its checkpoint",
                )
            continue
        if checkpoint.seq > last_seq:
            return Finding(
                Problem.TRUNCATED,
                last_seq + 1,
                f"records {last_seq + 1} to {checkpoint.seq} were cut off the end: a checkpoint"
                f" covers record {checkpoint.seq}",
                end_seq=checkpoint.seq,
            )
        if hashes.get(checkpoint.seq) != checkpoint.hash:
            return Finding(
                Problem.REWRITTEN,
                checkpoint.seq,
                f"record {checkpoint.seq} differs from its signed checkpoint: the records up to"
                " it were rewritten",
            )
    return None


# --- figures ------------------------------------------------------------------------------


def shown(count: int) -> int | str:
    """A count as the figures show it: from 1 to 4, "<5", so that nobody can be singled out.

    A small count is hidden because, with what else a reader knows (a city, a month, a rare
    category), one to four referrals can point at the very people referred. Zero points at
    nobody: "no referral went overdue at amal" says something about amal's work, nothing
    about a person, so it is shown as 0 (hiding it as "<5" made an empty cell look like
    cases). Hiding a cell does not do by itself: a total shown beside it could give it back
    by subtraction, so the figures' tables hide a second count too (``suppression``)."""
    return count if count == 0 or count >= SMALL_COUNT else f"<{SMALL_COUNT}"


def rate(part: int, whole: int) -> float | None:
    """A share, only when both counts are shown as they are: the whole at least five, the
    part zero or at least five (a rate of a hidden part would give the part back)."""
    if whole < SMALL_COUNT or 0 < part < SMALL_COUNT:
        return None
    return round(part / whole, 3)


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def coverage(providers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per region, the categories of service with at least one open provider taking referrals.

    ``providers`` are directory records (``OrganisationPublished`` as JSON) of active members;
    a national service covers every region any record names.
    """
    records = [p for p in providers if p.get("status") == "active"]
    regions: set[str] = set()
    for record in records:
        regions.update(record.get("regions", []))
        for service in record.get("services", []):
            regions.update(service.get("regions", []))
    open_by_region: dict[str, dict[str, set[str]]] = {region: {} for region in regions}
    for record in records:
        for service in record.get("services", []):
            if service.get("capacity") != "open" or not service.get("takes_referrals", True):
                continue
            where = regions if service.get("national") else set(service.get("regions", []))
            for region in where:
                providers_of = open_by_region[region].setdefault(service["category"], set())
                providers_of.add(record["org_id"])
    return [
        {
            "region": region,
            "categories": sorted(categories),
            "category_count": len(categories),
            "open_providers": {c: len(orgs) for c, orgs in sorted(categories.items())},
        }
        for region, categories in sorted(open_by_region.items())
    ]


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
