"""What the referrals service asks the node's directory, over NATS request/reply (services
never import each other): an organisation's record and keys, and ranked suggestions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contracts.directory import (
    KeyUse,
    MembershipStatus,
    OrganisationPublished,
    PublicKey,
)
from shared.errors import Invalid, NotFound
from shared.service import ServiceContext


async def organisation(ctx: ServiceContext, org_id: str) -> OrganisationPublished | None:
    try:
        found = await ctx.bus.request("relais.cmd.directory.organisation", {"org_id": org_id})
    except NotFound:
        return None
    return OrganisationPublished.model_validate(found)


async def recipient(ctx: ServiceContext, org_id: str, category: str) -> OrganisationPublished:
    """The organisation a referral is addressed to, if it may receive one of ``category``."""
    if org_id == ctx.settings.org:
        raise Invalid("an organisation does not refer to itself", field="to_org")
    record = await organisation(ctx, org_id)
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
