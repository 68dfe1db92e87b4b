"""The referrals' copy of the directory (``services.referrals.roster.Roster``): one question
to the directory serves the envelopes after it, and a copy that is outdated never refuses what
the directory would accept (a key rotated in since), nor outlives a change it was told of."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from deploy.demo_network import MEMBERS, record
from services.referrals.roster import Roster, vouches
from shared.contracts.directory import KeyUse, MembershipStatus, OrganisationPublished, PublicKey

NOW = datetime.now(UTC)
SANAD = next(org for org in MEMBERS if org.org_id == "sanad")


def signing(name: str, until: datetime | None = None) -> PublicKey:
    return PublicKey(
        key_id=name,
        use=KeyUse.SIGNING,
        public_key="A" * 43 + "=",
        valid_from=NOW - timedelta(days=1),
        valid_until=until,
    )


def sanad(version: int, *keys: PublicKey) -> OrganisationPublished:
    return record(SANAD, version=version, node_url="http://127.0.0.1:1", keys=list(keys))


class Directory:
    """What the directory answers, and how often it was asked."""

    def __init__(self, current: OrganisationPublished | None) -> None:
        self.current = current
        self.asked = 0
        self.hold: asyncio.Event | None = None  # set: answers wait for it

    async def ask(self, org_id: str) -> OrganisationPublished | None:
        self.asked += 1
        answer = self.current
        if self.hold is not None:
            await self.hold.wait()
        return answer


async def test_one_question_serves_the_envelopes_after_it() -> None:
    directory = Directory(sanad(1, signing("key1")))
    roster = Roster(directory.ask)
    for _ in range(5):
        found = await roster.organisation("sanad")
        assert found is not None and found.version == 1
    assert directory.asked == 1


async def test_a_key_published_since_the_copy_is_found_not_refused() -> None:
    directory = Directory(sanad(1, signing("key1")))
    roster = Roster(directory.ask)
    await roster.organisation("sanad")
    directory.current = sanad(2, signing("key1"), signing("key2"))  # rotated; no notice yet

    def vouching_for_key2(r: OrganisationPublished) -> bool:
        return vouches(r, "key2", NOW)

    found = await roster.organisation("sanad", vouching_for_key2)
    assert found is not None and found.version == 2 and vouches(found, "key2", NOW)
    # and the fresh copy serves the next envelope signed with k2 without asking again
    asked = directory.asked
    await roster.organisation("sanad", vouching_for_key2)
    assert directory.asked == asked


async def test_a_notice_of_change_drops_the_copy() -> None:
    directory = Directory(sanad(1, signing("key1")))
    roster = Roster(directory.ask)
    await roster.organisation("sanad")
    suspended = sanad(2, signing("key1")).model_copy(update={"status": MembershipStatus.SUSPENDED})
    directory.current = suspended
    roster.heard({"org_id": "sanad"})
    found = await roster.organisation("sanad")
    assert found is not None and found.status is MembershipStatus.SUSPENDED


async def test_a_read_on_its_way_when_the_record_changed_is_not_kept() -> None:
    directory = Directory(sanad(1, signing("key1")))
    roster = Roster(directory.ask)
    directory.hold = asyncio.Event()
    reading = asyncio.create_task(roster.organisation("sanad"))
    await asyncio.sleep(0)  # the question is asked, with version 1's answer
    directory.current = sanad(2, signing("key1"))
    roster.heard({"org_id": "sanad"})
    directory.hold.set()
    assert (await reading) is not None
    found = await roster.organisation("sanad")
    assert found is not None and found.version == 2


async def test_a_reconnection_forgets_every_copy() -> None:
    directory = Directory(sanad(1, signing("key1")))
    roster = Roster(directory.ask)
    await roster.organisation("sanad")
    directory.current = sanad(2, signing("key1"))
    roster.invalidate()  # what Bus.reconnected calls
    found = await roster.organisation("sanad")
    assert found is not None and found.version == 2


async def test_a_copy_is_kept_for_a_bounded_time_only() -> None:
    directory = Directory(sanad(1, signing("key1")))
    now = [0.0]
    roster = Roster(directory.ask, keep_for=60.0, clock=lambda: now[0])
    await roster.organisation("sanad")
    directory.current = sanad(2, signing("key1"))
    now[0] = 59.0
    kept = await roster.organisation("sanad")
    assert kept is not None and kept.version == 1
    now[0] = 61.0
    found = await roster.organisation("sanad")
    assert found is not None and found.version == 2


async def test_an_organisation_the_directory_lacks_is_asked_again_each_time() -> None:
    directory = Directory(None)
    roster = Roster(directory.ask)
    assert await roster.organisation("sanad") is None
    directory.current = sanad(1, signing("key1"))  # the newcomer's record arrived
    found = await roster.organisation("sanad")
    assert found is not None and found.version == 1


def test_an_expired_or_unknown_key_or_a_suspended_member_does_not_vouch() -> None:
    current = sanad(1, signing("key1"), signing("old1", until=NOW - timedelta(minutes=1)))
    assert vouches(current, "key1", NOW)
    assert not vouches(current, "key9", NOW)
    assert not vouches(current, "old1", NOW - timedelta(hours=1))
    suspended = current.model_copy(update={"status": MembershipStatus.SUSPENDED})
    assert not vouches(suspended, "key1", NOW)
