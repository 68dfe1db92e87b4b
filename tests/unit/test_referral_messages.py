"""The messages of a referral's conversation: sealed for the two organisations and bound to
their referral, their id and their author's organisation; signed by the writer's node; the
rules of what may be written and until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.secret import Aead
from nacl.utils import random

from services.referrals import domain, envelope
from shared.contracts.referrals import MESSAGE_MAX_CHARS, ReferralMessaged
from shared.crypto import NodeKeys, key_id
from shared.errors import Conflict, Forbidden, Invalid

REFERRAL = "019ac000-0000-7000-8000-000000000001"
OTHER_REFERRAL = "019ac000-0000-7000-8000-000000000002"
MESSAGE = "019ac000-0000-7000-8000-0000000000a1"
OTHER_MESSAGE = "019ac000-0000-7000-8000-0000000000a2"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
WHERE = {"referral_id": REFERRAL, "message_id": MESSAGE, "by_org": "amal"}


@pytest.fixture
def key() -> bytes:
    return random(Aead.KEY_SIZE)


@pytest.fixture
def writer(tmp_path: Path) -> NodeKeys:
    return NodeKeys.load_or_create(tmp_path / "amal")


class TestSealing:
    def test_a_message_opens_with_its_referrals_key_where_it_was_written(self, key: bytes) -> None:
        sealed = envelope.seal_message(key, "A-t-elle son récépissé ?", **WHERE)
        assert "récépissé" not in sealed
        assert envelope.open_message(key, sealed, **WHERE) == "A-t-elle son récépissé ?"

    @pytest.mark.parametrize(
        "moved",
        [
            {"referral_id": OTHER_REFERRAL},  # pasted into another referral's thread
            {"message_id": OTHER_MESSAGE},  # passed off as another message
            {"by_org": "sanad"},  # put in the other organisation's mouth
        ],
    )
    def test_a_message_moved_elsewhere_does_not_open(
        self, key: bytes, moved: dict[str, str]
    ) -> None:
        sealed = envelope.seal_message(key, "Oui", **WHERE)
        with pytest.raises(envelope.Unreadable):
            envelope.open_message(key, sealed, **(WHERE | moved))

    def test_another_referrals_key_does_not_open_it(self, key: bytes) -> None:
        sealed = envelope.seal_message(key, "Oui", **WHERE)
        with pytest.raises(envelope.Unreadable):
            envelope.open_message(random(Aead.KEY_SIZE), sealed, **WHERE)

    def test_a_note_does_not_open_as_a_message(self, key: bytes) -> None:
        note = envelope.seal_note(key, "Plus de place", referral_id=REFERRAL, status="declined",
                                  by_org="amal")  # fmt: skip
        with pytest.raises(envelope.Unreadable):
            envelope.open_message(key, note, **WHERE)

    def test_a_damaged_message_does_not_open(self, key: bytes) -> None:
        with pytest.raises(envelope.Unreadable):
            envelope.open_message(key, "not base64 at all!", **WHERE)


def signed(writer: NodeKeys, key: bytes, **changes: str) -> ReferralMessaged:
    return envelope.sign_message(
        writer,
        {
            **WHERE,
            "by_role": "focal_point",
            "at": NOW.isoformat(),
            "sealed_text": envelope.seal_message(key, "Oui", **WHERE),
            "sender_key_id": key_id(writer.signing_public),
        }
        | changes,
    )


class TestSignature:
    def test_the_writers_node_signs_every_field(self, writer: NodeKeys, key: bytes) -> None:
        message = signed(writer, key)
        envelope.check_message_signature(message, envelope.b64(writer.signing_public))

    @pytest.mark.parametrize(
        "field, value",
        [
            ("referral_id", OTHER_REFERRAL),
            ("by_org", "sanad"),
            ("by_role", "caseworker"),
            ("at", (NOW + timedelta(hours=1)).isoformat()),
        ],
    )
    def test_a_changed_field_breaks_the_signature(
        self, writer: NodeKeys, key: bytes, field: str, value: str
    ) -> None:
        honest = signed(writer, key)
        altered = ReferralMessaged.model_validate(honest.model_dump(mode="json") | {field: value})
        with pytest.raises(Forbidden):
            envelope.check_message_signature(altered, envelope.b64(writer.signing_public))

    def test_another_nodes_key_does_not_verify(self, writer: NodeKeys, tmp_path: Path) -> None:
        impostor = NodeKeys.load_or_create(tmp_path / "impostor")
        message = signed(impostor, random(Aead.KEY_SIZE))
        with pytest.raises(Forbidden):
            envelope.check_message_signature(message, envelope.b64(writer.signing_public))


class TestWhatMayBeWritten:
    @pytest.mark.parametrize("text", ["", "   ", "\n\t "])
    def test_an_empty_message_is_refused_naming_text(self, text: str) -> None:
        with pytest.raises(Invalid) as refused:
            domain.check_message_text(text, MESSAGE_MAX_CHARS)
        assert refused.value.field == "text" and "empty" in refused.value.detail

    def test_an_oversized_message_is_refused_saying_the_limit(self) -> None:
        assert domain.check_message_text("x" * MESSAGE_MAX_CHARS, MESSAGE_MAX_CHARS)
        with pytest.raises(Invalid) as refused:
            domain.check_message_text("x" * (MESSAGE_MAX_CHARS + 1), MESSAGE_MAX_CHARS)
        assert refused.value.field == "text"
        assert f"at most {MESSAGE_MAX_CHARS} characters" in refused.value.detail

    def test_the_conversation_stays_open_until_the_grace_after_closing(self) -> None:
        grace = timedelta(days=30)
        assert domain.conversation_open(None, NOW, grace)
        closed = NOW - timedelta(days=29)
        assert domain.conversation_open(closed, NOW, grace)
        domain.check_conversation_open(closed, NOW, grace)
        with pytest.raises(Conflict) as ended:
            domain.check_conversation_open(NOW - timedelta(days=31), NOW, grace)
        assert "30 days" in ended.value.detail
