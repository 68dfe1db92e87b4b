"""Key rotation without servers: the node's key ring keeps what it replaced and opens what
was sealed for it; the directory takes a rotation of an organisation's keys and nothing
else; a signature counts only until its key's end."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.public import PrivateKey, SealedBox

from services.directory import domain
from services.referrals import roster
from shared import crypto
from shared.contracts.directory import PublicKey
from shared.errors import Forbidden
from tests.unit.test_directory_domain import record

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def keys_of(folder: Path, since: datetime = NOW) -> list[PublicKey]:
    return [
        PublicKey.model_validate(k).model_copy(update={"valid_from": since})
        for k in crypto.NodeKeys.load_or_create(folder).public_keys()
    ]


class TestKeyRing:
    def test_a_read_while_another_process_takes_up_the_next_pair_sees_one_ring(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The node's directory takes the pair up while its other services read the folder:
        a file listed, then moved before it is read, once failed a read (FileNotFoundError)."""
        old = crypto.NodeKeys.load_or_create(tmp_path)
        new = {k["key_id"] for k in crypto.make_next_pair(tmp_path)}
        read_bytes = Path.read_bytes

        def moved_under_the_reader(path: Path) -> bytes:
            if path.suffix == crypto.PENDING_SUFFIX:
                monkeypatch.setattr(Path, "read_bytes", read_bytes)
                assert crypto.take_up_next_pair(tmp_path, new)
            return read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", moved_under_the_reader)
        seen = crypto.NodeKeys.load_or_create(tmp_path)
        assert {crypto.key_id(seen.signing_public), crypto.key_id(seen.encryption_public)} == new
        assert old.signing_public in {bytes(k.verify_key) for k in seen.other_signing}

    def test_the_next_pair_waits_beside_the_current_one_until_it_is_published(
        self, tmp_path: Path
    ) -> None:
        ring = crypto.KeyRing(tmp_path)
        old_id = crypto.key_id(ring.signing_public)
        new = {k["use"]: k["key_id"] for k in crypto.make_next_pair(tmp_path)}
        assert crypto.make_next_pair(tmp_path)[0]["key_id"] == new["ed25519"]  # kept on retry
        assert ring.sign({"a": 1})[0] == old_id  # not published yet: the old key signs
        assert not ring.take_up({old_id})
        assert ring.take_up(set(new.values()))
        assert ring.sign({"a": 1})[0] == new["ed25519"]  # every holder of the ring sees it
        assert set(ring.verifying_keys()) == {old_id, new["ed25519"]}
        retired = sorted((tmp_path / crypto.RETIRED_DIR).iterdir())
        assert len(retired) == 2
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in retired)

    def test_what_was_sealed_for_a_retired_key_still_opens(self, tmp_path: Path) -> None:
        ring = crypto.KeyRing(tmp_path)
        old = ring.current().encryption.public_key
        sealed = SealedBox(old).encrypt(b"data key")
        new = crypto.make_next_pair(tmp_path)
        assert ring.take_up({k["key_id"] for k in new})
        keys = ring.current()
        opener = keys.encryption_key(crypto.key_id(bytes(old)))
        assert opener is not None and SealedBox(opener).decrypt(sealed) == b"data key"
        assert keys.encryption_key(new[1]["key_id"]) is keys.encryption
        assert keys.encryption_key(crypto.key_id(bytes(PrivateKey.generate().public_key))) is None


class TestRotationInTheDirectory:
    def current(self, tmp_path: Path) -> tuple[list[PublicKey], list[PublicKey]]:
        old = keys_of(tmp_path / "old", NOW - timedelta(days=300))
        new = keys_of(tmp_path / "new")
        return old, new

    def test_an_organisation_rotates_its_keys_in_its_own_change(self, tmp_path: Path) -> None:
        old, new = self.current(tmp_path)
        ended = [k.model_copy(update={"valid_until": NOW + timedelta(days=7)}) for k in old]
        held = record(3).model_copy(update={"keys": old})
        changed = domain.own_change(
            held, held.model_copy(update={"keys": ended + new, "version": 4})
        )
        assert [k.key_id for k in changed.keys] == [k.key_id for k in old + new]

    @pytest.mark.parametrize(
        "change", ["removed", "altered", "extended", "two_of_a_use", "lying_id"]
    )
    def test_anything_but_a_rotation_of_the_keys_is_refused(
        self, tmp_path: Path, change: str
    ) -> None:
        old, new = self.current(tmp_path)
        ended = [k.model_copy(update={"valid_until": NOW}) for k in old]
        current = record(3).model_copy(update={"keys": ended})
        proposed = {
            "removed": ended[1:] + new,
            "altered": [ended[0].model_copy(update={"public_key": new[0].public_key}), *ended[1:]],
            "extended": [k.model_copy(update={"valid_until": None}) for k in ended],
            "two_of_a_use": ended + new + keys_of(tmp_path / "third")[:1],
            "lying_id": [*ended, new[0].model_copy(update={"public_key": new[1].public_key})],
        }[change]
        with pytest.raises(Forbidden) as refused:
            domain.own_change(current, current.model_copy(update={"keys": proposed, "version": 4}))
        assert refused.value.field == "keys"


def test_a_signature_counts_until_its_key_ends_whatever_date_it_claims(tmp_path: Path) -> None:
    key = keys_of(tmp_path)[0].model_copy(update={"valid_until": NOW})
    assert roster.unexpired(key, NOW - timedelta(hours=1), NOW - timedelta(minutes=1))
    assert not roster.unexpired(key, NOW - timedelta(hours=1), NOW)  # backdated, received late
    assert not roster.unexpired(key, NOW + timedelta(seconds=1), NOW - timedelta(minutes=1))
    assert roster.unexpired(key.model_copy(update={"valid_until": None}), NOW, NOW)


def _rotated(folder: Path) -> tuple[crypto.NodeKeys, crypto.NodeKeys]:
    """The ring before and after one rotation taken up in ``folder``."""
    before = crypto.NodeKeys.load_or_create(folder)
    new = {k["key_id"] for k in crypto.make_next_pair(folder)}
    assert crypto.take_up_next_pair(folder, new)
    return before, crypto.NodeKeys.load_or_create(folder)


class TestForgettingRetiredKeys:
    def test_the_states_name_current_next_and_retired_keys(self, tmp_path: Path) -> None:
        before, after = _rotated(tmp_path)
        waiting = {k["key_id"] for k in crypto.make_next_pair(tmp_path)}
        states = crypto.held_states(tmp_path)
        assert states[crypto.key_id(after.signing_public)] == "current"
        assert states[crypto.key_id(before.encryption_public)] == "retired"
        assert all(states[kid] == "next" for kid in waiting)

    def test_destroying_the_retired_keys_keeps_what_checks_old_signatures(
        self, tmp_path: Path
    ) -> None:
        before, _ = _rotated(tmp_path)
        old_signing = crypto.key_id(before.signing_public)
        old_encryption = crypto.key_id(before.encryption_public)
        key_id, signature = before.sign({"checkpoint": 1})
        assert set(crypto.retired_encryption_keys(tmp_path)) == {old_encryption}

        forgotten = crypto.forget_retired(tmp_path)

        assert set(forgotten) == {old_signing, old_encryption}
        ring = crypto.NodeKeys.load_or_create(tmp_path)
        assert ring.encryption_key(old_encryption) is None  # gone for good
        assert not ring.other_signing and not ring.other_encryption
        assert not list((tmp_path / crypto.RETIRED_DIR).glob("*.key"))
        # The old checkpoint still verifies with the public half kept.
        crypto.verify({"checkpoint": 1}, signature, ring.verifying_keys()[key_id])
        assert crypto.held_states(tmp_path)[old_signing] == "forgotten"
        assert crypto.forget_retired(tmp_path) == []  # nothing left: nothing done
