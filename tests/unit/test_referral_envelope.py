"""The sealed envelope: only the two organisations read it, and any change is detected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.public import SealedBox
from nacl.secret import Aead
from nacl.utils import random

from services.referrals import envelope
from shared.contracts.referrals import (
    Consent,
    Header,
    LegalBasis,
    ReferralOffered,
    SealedPayload,
    Urgency,
)
from shared.crypto import NodeKeys, key_id
from shared.errors import Forbidden

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
PAYLOAD = {"given_name": "Awa", "need_summary": "Consultation"}


@pytest.fixture
def sender(tmp_path: Path) -> NodeKeys:
    return NodeKeys.load_or_create(tmp_path / "sender")


@pytest.fixture
def recipient(tmp_path: Path) -> NodeKeys:
    return NodeKeys.load_or_create(tmp_path / "recipient")


def header(sender: NodeKeys, recipient: NodeKeys, **changes: object) -> Header:
    fields: dict[str, object] = {
        "referral_id": "019ac000-0000-7000-8000-000000000001",
        "from_org": "sanad",
        "to_org": "amal",
        "category": "primary_health",
        "urgency": Urgency.ROUTINE,
        "legal_basis": LegalBasis.VITAL_INTEREST,
        "created_at": NOW,
        "acknowledge_by": NOW + timedelta(days=3),
        "answer_by": NOW + timedelta(days=7),
        "sender_key_id": key_id(sender.signing_public),
        "recipient_key_id": key_id(recipient.encryption_public),
        "sender_encryption_key_id": key_id(sender.encryption_public),
    }
    return Header.model_validate(fields | changes)


def seal(sender: NodeKeys, recipient: NodeKeys) -> ReferralOffered:
    return envelope.seal(
        header(sender, recipient),
        PAYLOAD,
        keys=sender,
        recipient_public=envelope.b64(recipient.encryption_public),
        sender_public=envelope.b64(sender.encryption_public),
    )


def test_the_recipient_and_the_sender_both_open_it(sender: NodeKeys, recipient: NodeKeys) -> None:
    offer = seal(sender, recipient)
    envelope.check_signature(offer, envelope.b64(sender.signing_public))
    for keys, copy in (
        (recipient, offer.sealed.key_for_recipient),
        (sender, offer.sealed.key_for_sender),
    ):
        key = envelope.data_key(copy, keys.encryption)
        assert (
            envelope.open_payload(offer.header, offer.sealed.nonce, offer.sealed.ciphertext, key)
            == PAYLOAD
        )


def test_the_ciphertext_does_not_carry_the_payload(sender: NodeKeys, recipient: NodeKeys) -> None:
    assert "Awa" not in seal(sender, recipient).model_dump_json()


def test_a_third_party_cannot_unseal_the_data_key(
    sender: NodeKeys, recipient: NodeKeys, tmp_path: Path
) -> None:
    hub = NodeKeys.load_or_create(tmp_path / "hub")
    with pytest.raises(envelope.Unreadable):
        envelope.data_key(seal(sender, recipient).sealed.key_for_recipient, hub.encryption)


def test_a_changed_header_breaks_the_signature_and_the_decryption(
    sender: NodeKeys, recipient: NodeKeys
) -> None:
    offer = seal(sender, recipient)
    moved = header(sender, recipient, urgency=Urgency.EMERGENCY)
    with pytest.raises(Forbidden):
        envelope.check_signature(
            offer.model_copy(update={"header": moved}), envelope.b64(sender.signing_public)
        )
    key = envelope.data_key(offer.sealed.key_for_recipient, recipient.encryption)
    with pytest.raises(envelope.Unreadable):
        envelope.open_payload(moved, offer.sealed.nonce, offer.sealed.ciphertext, key)


def test_another_key_cannot_sign_for_the_sender(
    sender: NodeKeys, recipient: NodeKeys, tmp_path: Path
) -> None:
    impostor = NodeKeys.load_or_create(tmp_path / "impostor")
    with pytest.raises(Forbidden):
        envelope.check_signature(seal(impostor, recipient), envelope.b64(sender.signing_public))


def test_notes_are_bound_to_their_step(sender: NodeKeys, recipient: NodeKeys) -> None:
    key = envelope.data_key(seal(sender, recipient).sealed.key_for_recipient, recipient.encryption)
    where = {"referral_id": "r1", "status": "declined", "by_org": "amal"}
    sealed = envelope.seal_note(key, "Plus de place", **where)
    assert envelope.open_note(key, sealed, **where) == "Plus de place"
    with pytest.raises(envelope.Unreadable):
        envelope.open_note(key, sealed, **(where | {"status": "completed"}))


def _old_json(document: object) -> bytes:
    """The serialisation envelopes were made with before RFC 8785."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sealed_the_old_way(sender: NodeKeys, recipient: NodeKeys) -> ReferralOffered:
    """An envelope as a node made it before RFC 8785: the header's sorted-key JSON as
    associated data, a bare base64 signature over the same form."""
    consent = Consent(
        given_at=NOW,
        scope_org="amal",
        scope_category="primary_health",
        recorded_by="Fatima Zahra 👩‍⚕️ فاطمة",
    )
    clear = header(sender, recipient, region="casablanca_settat", consent=consent)
    data_key = random(Aead.KEY_SIZE)
    message = Aead(data_key).encrypt(
        json.dumps(PAYLOAD).encode(), _old_json(clear.model_dump(mode="json"))
    )
    sealed = SealedPayload(
        nonce=envelope.b64(message.nonce),
        ciphertext=envelope.b64(message.ciphertext),
        key_for_recipient=envelope.b64(
            SealedBox(recipient.encryption.public_key).encrypt(data_key)
        ),
        key_for_sender=envelope.b64(SealedBox(sender.encryption.public_key).encrypt(data_key)),
    )
    signed = {"header": clear.model_dump(mode="json"), "sealed": sealed.model_dump(mode="json")}
    signature = envelope.b64(sender.signing.sign(_old_json(signed)).signature)
    return ReferralOffered(header=clear, sealed=sealed, signature=signature)


def test_an_envelope_sealed_before_rfc_8785_still_verifies_and_opens(
    sender: NodeKeys, recipient: NodeKeys
) -> None:
    offer = _sealed_the_old_way(sender, recipient)
    envelope.check_signature(offer, envelope.b64(sender.signing_public))
    key = envelope.data_key(offer.sealed.key_for_recipient, recipient.encryption)
    opened = envelope.open_payload(offer.header, offer.sealed.nonce, offer.sealed.ciphertext, key)
    assert opened == PAYLOAD


def test_an_old_envelope_tampered_with_still_fails(sender: NodeKeys, recipient: NodeKeys) -> None:
    offer = _sealed_the_old_way(sender, recipient)
    moved = offer.model_copy(update={"header": offer.header.model_copy(update={"to_org": "nour"})})
    with pytest.raises(Forbidden):
        envelope.check_signature(moved, envelope.b64(sender.signing_public))
    key = envelope.data_key(offer.sealed.key_for_recipient, recipient.encryption)
    with pytest.raises(envelope.Unreadable):
        envelope.open_payload(moved.header, offer.sealed.nonce, offer.sealed.ciphertext, key)


def test_a_new_envelope_is_signed_in_the_rfc_8785_form(
    sender: NodeKeys, recipient: NodeKeys
) -> None:
    offer = seal(sender, recipient)
    assert offer.signature.startswith("rfc8785:")
    relabelled = offer.model_copy(update={"signature": offer.signature.removeprefix("rfc8785:")})
    envelope.check_signature(relabelled, envelope.b64(sender.signing_public))  # same bytes here
    forged = offer.model_copy(update={"signature": "rfc8785:" + "A" * 86 + "=="})
    with pytest.raises(Forbidden):
        envelope.check_signature(forged, envelope.b64(sender.signing_public))
