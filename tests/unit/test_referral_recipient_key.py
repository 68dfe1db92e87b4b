"""Which of the recipient's keys a referral is sealed to: the one valid by the sender's clock,
and, when the sender's clock is behind the clock that made the recipient's keys, the one the
directory publishes all the same (found by the chaos suite's clock jump: a 422 "no valid
x25519 key" for every referral while the sender's clock was behind)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deploy.demo_network import MEMBERS, record
from services.referrals.roster import current_key
from shared.contracts.directory import KeyUse, OrganisationPublished, PublicKey
from shared.errors import Invalid

MADE = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
AMAL = next(org for org in MEMBERS if org.org_id == "amal")


def key(name: str, use: KeyUse, since: datetime, until: datetime | None = None) -> PublicKey:
    return PublicKey(
        key_id=name, use=use, public_key="A" * 43 + "=", valid_from=since, valid_until=until
    )


def amal(*keys: PublicKey) -> OrganisationPublished:
    return record(AMAL, version=1, node_url="http://127.0.0.1:1", keys=list(keys))


def test_the_newest_key_valid_now_is_chosen() -> None:
    old = key("old1", KeyUse.ENCRYPTION, MADE - timedelta(days=30))
    new = key("new1", KeyUse.ENCRYPTION, MADE)
    signing = key("sig1", KeyUse.SIGNING, MADE)
    assert current_key(amal(old, new, signing), KeyUse.ENCRYPTION, MADE + timedelta(1)) == new


def test_a_sender_whose_clock_is_behind_still_seals_to_the_published_key() -> None:
    published = key("enc1", KeyUse.ENCRYPTION, MADE)
    behind = MADE - timedelta(minutes=30)
    assert current_key(amal(published), KeyUse.ENCRYPTION, behind) == published


def test_an_expired_key_never_serves() -> None:
    expired = key("enc1", KeyUse.ENCRYPTION, MADE - timedelta(days=2), MADE - timedelta(days=1))
    with pytest.raises(Invalid, match="amal has no valid x25519 key"):
        current_key(amal(expired), KeyUse.ENCRYPTION, MADE)


def test_no_key_for_the_use_is_refused() -> None:
    with pytest.raises(Invalid, match="amal has no valid x25519 key"):
        current_key(amal(key("sig1", KeyUse.SIGNING, MADE)), KeyUse.ENCRYPTION, MADE)
