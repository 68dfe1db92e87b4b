"""Directory rules: an organisation record changes one version at a time, and a link probe
measures the round trip between two nodes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contracts.directory import OrganisationPublished
from shared.errors import Conflict, Invalid


def next_record(
    current: OrganisationPublished | None, proposed: OrganisationPublished
) -> OrganisationPublished:
    """The hub's new record: its version must follow the current one exactly."""
    expected = 1 if current is None else current.version + 1
    if proposed.version != expected:
        raise Conflict(
            f"organisation {proposed.org_id} is at version {expected - 1}; "
            f"send version {expected}, not {proposed.version}",
            field="version",
        )
    return proposed


def should_apply(current_version: int | None, incoming: OrganisationPublished) -> bool:
    """A replica applies a broadcast only if it is newer than what it holds."""
    return current_version is None or incoming.version > current_version


@dataclass(frozen=True)
class ProbeResult:
    probe_id: str
    round_trip_ms: float


def round_trip(probe_id: str, probed_at: datetime, answer_received: datetime) -> ProbeResult:
    if answer_received < probed_at:
        raise Invalid("the answer predates the probe", field="probed_at")
    return ProbeResult(probe_id, (answer_received - probed_at).total_seconds() * 1000)
