"""The network at a glance, computed from the directory's records: members by region, and the
coverage gaps (service categories a region has no open provider for). Pure functions over the
records the directory API returns, plus the bar widths the charts draw them with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BAR_STEPS = 20  # bars are drawn in 5 % steps (CSS classes w0 … w100): no inline style needed


def bar_width(value: float, largest: float) -> int:
    """The width class of a bar, in percent rounded to 5 (a non-zero value shows at least 5)."""
    if largest <= 0 or value <= 0:
        return 0
    steps = round(value / largest * BAR_STEPS)
    return max(1, min(BAR_STEPS, steps)) * (100 // BAR_STEPS)


def heat(value: int, largest: int) -> int:
    """A level from 0 to 4 for shading a cell of a matrix."""
    if value <= 0 or largest <= 0:
        return 0
    return max(1, min(4, round(value / largest * 4)))


def members_by_region(
    organisations: Iterable[Mapping[str, Any]], region_of_city: Mapping[str, str]
) -> Counter[str]:
    """Active members (not the secretariat) counted by the region of the city they are based in."""
    counts: Counter[str] = Counter()
    for org in organisations:
        if org.get("status") != "active" or org.get("kind") == "secretariat":
            continue
        counts[region_of_city.get(str(org.get("city")), "")] += 1
    return counts


def regions_served(
    service: Mapping[str, Any],
    org_city: str,
    region_of_city: Mapping[str, str],
    all_regions: set[str],
) -> set[str]:
    """The regions a service is offered in (all of them when national; its organisation's city's
    region when it names no area, as the directory's match assumes)."""
    if service.get("national"):
        return set(all_regions)
    regions = set(service.get("regions") or [])
    regions |= {region_of_city[c] for c in service.get("cities") or [] if c in region_of_city}
    if not regions and not service.get("cities"):
        region = region_of_city.get(org_city)
        if region:
            regions.add(region)
    return regions


@dataclass(frozen=True)
class Gap:
    region: str
    missing: list[str]  # category codes with no open provider
    waitlist_only: list[str]  # category codes with providers on a waiting list only


def coverage_gaps(
    organisations: Iterable[Mapping[str, Any]],
    regions: Iterable[str],
    categories: Iterable[str],
    region_of_city: Mapping[str, str],
) -> list[Gap]:
    """For every region, the categories no active member offers there with open capacity."""
    region_list = list(regions)
    all_regions = set(region_list)
    open_in: dict[str, set[str]] = {r: set() for r in region_list}
    waitlist_in: dict[str, set[str]] = {r: set() for r in region_list}
    for org in organisations:
        if org.get("status") != "active":
            continue
        for service in org.get("services") or []:
            if not service.get("takes_referrals", True):
                continue
            capacity = service.get("capacity")
            target = (
                open_in if capacity == "open" else waitlist_in if capacity == "waitlist" else None
            )
            if target is None:
                continue
            for region in regions_served(
                service, str(org.get("city")), region_of_city, all_regions
            ):
                if region in target:
                    target[region].add(str(service.get("category")))
    category_list = list(categories)
    return [
        Gap(
            region=region,
            missing=[c for c in category_list if c not in open_in[region]],
            waitlist_only=[
                c for c in category_list if c not in open_in[region] and c in waitlist_in[region]
            ],
        )
        for region in region_list
    ]
