"""The run's figures, for people (``table``) and for comparing runs (``bench-results/``).

Recovery per fault kind, in seconds:
- ``to_create``: from the fault's injection to the first referral acknowledged (201) after it,
  at any sender; near 0 when the fault does not stand in the way of creating;
- ``to_received``: from the heal to the first ``received`` step back at a sender after it.
Each as median, 90th percentile and maximum over the faults of that kind; a fault after which
nothing came (the run ended) is counted in ``none_after``.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.bench.measure import percentile
from tests.bench.report import RESULTS
from tests.chaos.checks import Verdict
from tests.chaos.faults import Fault


def first_after(times: Sequence[float], moment: float) -> float | None:
    """How long after ``moment`` the first of ``times`` (sorted) came, or None."""
    at = bisect.bisect_left(times, moment)
    return times[at] - moment if at < len(times) else None


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "median": round(percentile(ordered, 50), 2),
        "p90": round(percentile(ordered, 90), 2),
        "max": round(ordered[-1], 2),
    }


def recovery(
    faults: Sequence[Fault], acks: Sequence[float], received: Sequence[float]
) -> dict[str, dict[str, Any]]:
    by_kind: dict[str, dict[str, list[float]]] = {}
    missing: Counter[str] = Counter()
    for fault in faults:
        found = by_kind.setdefault(fault.kind, {"to_create": [], "to_received": []})
        created = first_after(acks, fault.injected_at)
        back = first_after(received, fault.healed_at) if fault.healed_at is not None else None
        if created is None or back is None:
            missing[fault.kind] += 1
        if created is not None:
            found["to_create"].append(created)
        if back is not None:
            found["to_received"].append(back)
    return {
        kind: {
            "to_create_s": _spread(found["to_create"]),
            "to_received_s": _spread(found["to_received"]),
            "none_after": missing[kind],
        }
        for kind, found in sorted(by_kind.items())
    }


def server_errors(answers: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """HTTP 5xx by route and status (timeouts and refused connections apart)."""
    found: dict[str, dict[str, int]] = {}
    for (route, status), count in sorted(answers.items()):
        if status.isdigit() and status.startswith("5"):
            found.setdefault(route, {})[status] = count
    return found


def document(
    *,
    settings: dict[str, Any],
    faults: Sequence[Fault],
    verdict: Verdict,
    answers: Counter[tuple[str, str]],
    acks: Sequence[float],
    received: Sequence[float],
    timings: dict[str, float],
    quiet: dict[str, Any] | None = None,
    machine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "benchmark": "chaos",
        "settings": settings,
        "machine": machine or {},
        "timings_s": timings,
        # Whether the network delivered everything before the checks, and what it still had
        # to do then (outbox rows, messages pending or awaiting a redelivery; 0 = idle).
        "quiescence": quiet or {},
        "faults": len(faults),
        "faults_by_kind": dict(sorted(Counter(f.kind for f in faults).items())),
        **verdict.as_json(),
        "http_5xx_by_route": server_errors(answers),
        "http_answers": {f"{route} {status}": n for (route, status), n in sorted(answers.items())},
        "recovery_by_kind": recovery(faults, acks, received),
        "fault_log": [asdict(f) for f in faults],
    }


def write_json(started: datetime, doc: dict[str, Any], folder: Path = RESULTS) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{started:%Y%m%dT%H%M%SZ}-chaos.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def table(doc: dict[str, Any]) -> str:
    def spread(s: dict[str, float] | None) -> str:
        return "—" if s is None else f"{s['median']:.2f} / {s['p90']:.2f} / {s['max']:.2f}"

    fives = sum(n for statuses in doc["http_5xx_by_route"].values() for n in statuses.values())
    lines = [
        f"chaos: {doc['faults']} faults over {doc['referrals_acknowledged']} acknowledged referrals"
        f" ({doc['referrals_attempted']} attempted, {doc['referrals_unresolved']} unresolved,"
        f" {doc['referrals_refused_4xx']} refused 4xx)",
        f"  lost {doc['lost']}  duplicated {doc['duplicated']}  stuck {doc['stuck']}"
        f"  broken chains {len(doc['broken_chains'])}  HTTP 5xx {fives}"
        f"  dead letters {sum(doc['dead_letters'].values())}",
    ]
    for answer, count in doc["refused_4xx"].items():
        lines.append(f"  refused {count}: {answer}")
    if doc["other_endings"]:
        lines.append(f"  other endings at the senders: {doc['other_endings']}")
    for route, statuses in doc["http_5xx_by_route"].items():
        lines.append(f"  5xx {route}: {statuses}")
    for group in doc["dead_letter_groups"]:
        lines.append(
            f"  dead letters {group['count']} at {group['node']}: {group['consumer']}"
            f" {group['why']} ({group['reason']}) {group['event_type']}"
        )
    width = max((len(k) for k in doc["recovery_by_kind"]), default=4)
    lines.append(
        f"  {'fault'.ljust(width)}  count  to create s (median / p90 / max)"
        "  to received after heal s (median / p90 / max)"
    )
    for kind, found in doc["recovery_by_kind"].items():
        lines.append(
            f"  {kind.ljust(width)}  {doc['faults_by_kind'].get(kind, 0):>5}"
            f"  {spread(found['to_create_s']):>32}  {spread(found['to_received_s']):>30}"
        )
    return "\n".join(lines)
