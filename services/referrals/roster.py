"""What the referrals service asks the node's directory, over NATS request/reply (services
never import each other): an organisation's record and keys, and ranked suggestions.

The records are kept for a while (``Roster``): every envelope received and every referral
sent needs its organisation's, and asking the directory each time was a request, a query and
two JSON round trips per event. A copy is dropped as soon as the directory says the record
changed (its notice, ``ORGANISATION_CHANGED_NOTICE``), on a reconnection to NATS (a notice may
have been lost) and after ``Roster.keep_for`` at the latest; and a record that would refuse
(an unknown or expired key, a member not active) is asked again before it does: a key
published since it was read is found, not refused.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.bus import Bus
from shared.contracts.directory import (
    ORGANISATION_CHANGED_NOTICE,
    KeyUse,
    MembershipStatus,
    OrganisationPublished,
    PublicKey,
)
from shared.errors import Invalid, NotFound
from shared.service import ServiceContext


@dataclass
class Roster:
    """The directory's records as this service last read them, by organisation."""

    ask: Callable[[str], Awaitable[OrganisationPublished | None]]  # the directory, now
    keep_for: float = 60.0  # seconds: a bound on staleness should a notice go astray
    clock: Callable[[], float] = time.monotonic
    _records: dict[str, tuple[float, OrganisationPublished]] = field(default_factory=dict)
    # Raised by every drop: a read that was on its way when a record changed is not kept.
    _generation: int = 0

    async def organisation(
        self, org_id: str, enough: Callable[[OrganisationPublished], bool] | None = None
    ) -> OrganisationPublished | None:
        """The kept record if there is one, young enough and, with ``enough``, one the caller
        would not refuse; else the directory's, kept for the next ones."""
        kept = self._records.get(org_id)
        if (
            kept is not None
            and self.clock() - kept[0] < self.keep_for
            and (enough is None or enough(kept[1]))
        ):
            return kept[1]
        return await self.refresh(org_id)

    async def refresh(self, org_id: str) -> OrganisationPublished | None:
        """The directory's record of ``org_id`` now, kept for the next ones."""
        generation, read_at = self._generation, self.clock()
        record = await self.ask(org_id)
        if generation == self._generation:
            if record is None:
                self._records.pop(org_id, None)
            else:
                self._records[org_id] = (read_at, record)
        return record

    def invalidate(self, org_id: str | None = None) -> None:
        """Forget ``org_id``'s record (every record with None)."""
        self._generation += 1
        if org_id is None:
            self._records.clear()
        else:
            self._records.pop(org_id, None)

    def heard(self, notice: dict[str, Any]) -> None:
        org_id = notice.get("org_id")
        self.invalidate(org_id if isinstance(org_id, str) else None)


async def install(ctx: ServiceContext) -> Roster:
    """At the service's start: the roster its handlers share, told of the directory's changes."""
    roster = Roster(lambda org_id: ask_directory(ctx.bus, org_id))
    ctx.state = roster
    await ctx.bus.on_notice(ORGANISATION_CHANGED_NOTICE, roster.heard)
    ctx.bus.reconnected.append(roster.invalidate)
    return roster


def _roster(ctx: ServiceContext) -> Roster | None:
    # A context the service's start did not make (a test's) hears no notice: no copies there.
    return ctx.state if isinstance(ctx.state, Roster) else None


async def ask_directory(bus: Bus, org_id: str) -> OrganisationPublished | None:
    try:
        found = await bus.request("relais.cmd.directory.organisation", {"org_id": org_id})
    except NotFound:
        return None
    return OrganisationPublished.model_validate(found)


async def organisation(
    ctx: ServiceContext,
    org_id: str,
    *,
    enough: Callable[[OrganisationPublished], bool] | None = None,
) -> OrganisationPublished | None:
    """The record of ``org_id`` (None if the directory has none). A kept copy serves if it
    is ``enough`` (it would not make the caller refuse); otherwise the directory is asked."""
    roster = _roster(ctx)
    if roster is None:
        return await ask_directory(ctx.bus, org_id)
    return await roster.organisation(org_id, enough)


async def refresh(ctx: ServiceContext, org_id: str) -> OrganisationPublished | None:
    """The directory's record of ``org_id`` as it is now, whatever copy was kept."""
    roster = _roster(ctx)
    return await ask_directory(ctx.bus, org_id) if roster is None else await roster.refresh(org_id)


def invalidate(ctx: ServiceContext, org_id: str | None = None) -> None:
    """Forget the kept copy of ``org_id``'s record (of every one with None)."""
    roster = _roster(ctx)
    if roster is not None:
        roster.invalidate(org_id)


def vouches(record: OrganisationPublished, key_id: str, signed_at: datetime) -> bool:
    """Whether ``record`` lets a signature by its key ``key_id`` made at ``signed_at`` be
    checked at all: an active member, the key published, not expired."""
    key = key_by_id(record, key_id, KeyUse.SIGNING)
    return (
        record.status is MembershipStatus.ACTIVE
        and key is not None
        and unexpired(key, signed_at, datetime.now(UTC))
    )


def _takes(record: OrganisationPublished, category: str) -> bool:
    try:
        current_key(record, KeyUse.ENCRYPTION, datetime.now(UTC))
    except Invalid:
        return False
    return record.status is MembershipStatus.ACTIVE and any(
        s.category == category and s.takes_referrals for s in record.services
    )


async def recipient(ctx: ServiceContext, org_id: str, category: str) -> OrganisationPublished:
    """The organisation a referral is addressed to, if it may receive one of ``category``."""
    if org_id == ctx.settings.org:
        raise Invalid("an organisation does not refer to itself", field="to_org")
    record = await organisation(ctx, org_id, enough=lambda r: _takes(r, category))
    if record is None:
        raise Invalid(f"no organisation {org_id} in the directory", field="to_org")
    if record.status is not MembershipStatus.ACTIVE:
        raise Invalid(
            f"{org_id} is not an active member ({record.status.value}); it cannot receive "
            "referrals",
            field="to_org",
        )
    if not any(s.category == category and s.takes_referrals for s in record.services):
        raise Invalid(f"{org_id} takes no {category} referrals", field="to_org")
    return record


def current_key(record: OrganisationPublished, use: KeyUse, at: datetime) -> PublicKey:
    """The organisation's key for ``use`` valid at ``at`` (the newest if several are).

    When none is valid yet by this node's clock but one the directory publishes has not
    expired, that one (the first to start): its ``valid_from`` is the time on the clock of the
    node that made it, and a clock behind that one must not stop every referral to the
    organisation (the chaos suite's clock jump found it). Sealing to a key the directory
    already publishes gives its holder nothing it should not have; an expired key never
    serves."""
    unexpired = [
        k for k in record.keys if k.use is use and (k.valid_until is None or at < k.valid_until)
    ]
    valid = [k for k in unexpired if k.valid_from <= at]
    if valid:
        return max(valid, key=lambda k: k.valid_from)
    if unexpired:
        return min(unexpired, key=lambda k: k.valid_from)
    raise Invalid(f"{record.org_id} has no valid {use.value} key in the directory")


def key_by_id(record: OrganisationPublished, key_id: str, use: KeyUse) -> PublicKey | None:
    return next((k for k in record.keys if k.key_id == key_id and k.use is use), None)


def unexpired(key: PublicKey, signed_at: datetime, now: datetime) -> bool:
    """Whether a signature by ``key`` still counts: made, and received, before the key's
    ``valid_until`` (the end of a rotation's overlap, or the time it was revoked). The time
    of receipt counts too because the signing time is the sender's word: a thief holding a
    revoked key would date its envelopes before the revocation. Its ``valid_from`` is not
    checked: it is the time on the signer's clock (see ``current_key``)."""
    return key.valid_until is None or max(signed_at, now) < key.valid_until


async def suggestions(ctx: ServiceContext, request: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await ctx.bus.request("relais.cmd.directory.match", request)
    return found
