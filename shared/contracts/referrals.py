"""Events of a referral's life (DESIGN.md §4 and §5).

Across the network: the sender's node offers a sealed envelope to the recipient organisation;
both nodes then tell each other every transition, so each holds the same history. What the
hub relays is the clear header (who, which category, how urgent, which deadlines: metadata
the secretariat may see) and ciphertext; the person's data never travels in clear.

Inside a node: ``ReferralChanged`` and ``ReferralDeadline`` tell the node's other services
(notifications, audit) what happened, with metadata only.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, JsonValue, WithJsonSchema

from shared.contracts.directory import CODE, ORG_ID
from shared.events import Payload, Scope, registry

REFERRAL_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$"  # a UUIDv7


def is_form_date(value: str) -> bool:
    """Whether ``value`` is a date as a category's form carries it: ``YYYY-MM-DD``, nothing else
    (``date.fromisoformat`` also takes ``20260102``). One rule for the API and the pages."""
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


class Status(StrEnum):
    SENT = "sent"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    DECLINED = "declined"
    CLOSED_UNRESOLVED = "closed_unresolved"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


# What can happen to a referral, as its history and its ``changed`` events name it: every
# status it reaches, and the steps that change no status. The one list the API's and the
# events' documents take their enum from (``Change``).
STEPS_WITHOUT_STATUS: dict[str, str] = {
    "consent_revoked": "the person withdrew consent",
    "consent_expired": "the consent's end date passed: the recipient's copy was destroyed",
    "key_destroyed": "this node destroyed its copy of the data key",
    "refused": "the recipient's node refused the envelope",
    "messaged": "a message was written in its conversation (events only)",
    "attached": "a file on it arrived, verified, from the other organisation (events only)",
    "follows": "it was sent again from an earlier referral, which link names (history only)",
    "sent_again": "it was sent again as a new referral, which link names (history only)",
}
CHANGES: tuple[str, ...] = (*(s.value for s in Status), *STEPS_WITHOUT_STATUS)


def _known_change(value: str) -> str:
    if value not in CHANGES:
        raise ValueError(f"unknown change {value!r}: one of {', '.join(CHANGES)}")
    return value


Change = Annotated[
    str,
    AfterValidator(_known_change),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(CHANGES),
            "description": "what happened: a status it reached, or "
            + "; ".join(f"{code}: {meaning}" for code, meaning in STEPS_WITHOUT_STATUS.items()),
        }
    ),
]


class RefusalReason(StrEnum):
    """Why a recipient's node refused an envelope (``ReferralRefused``): no content, ever."""

    SENDER_MISMATCH = "sender_mismatch"
    NOT_ADDRESSED_TO_US = "not_addressed_to_us"
    SENDER_NOT_ACTIVE = "sender_not_active"
    UNKNOWN_SIGNING_KEY = "unknown_signing_key"
    EXPIRED_SIGNING_KEY = "expired_signing_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_OUR_KEY = "not_our_key"
    UNDECRYPTABLE = "undecryptable"
    PAYLOAD_OUTSIDE_FORM = "payload_outside_form"


# Documented as an enum, read as a code: a node of a later release may add one, and its
# refusal must still reach the sender rather than be parked.
REFUSAL_CODES: dict[str, JsonValue] = {"enum": [r.value for r in RefusalReason]}


# A step's reason codes come from the referrals service's reasons file, which it declares on
# import (``declare_step_reasons``) for the published documents: shared reads no service's data.
STEP_REASONS: list[str] = []


def declare_step_reasons(codes: list[str]) -> None:
    STEP_REASONS[:] = list(dict.fromkeys(codes))


def _list_step_reasons(schema: dict[str, Any]) -> None:
    for option in schema.get("anyOf", []):
        if option.get("type") == "string" and STEP_REASONS:
            option["enum"] = list(STEP_REASONS)


class Urgency(StrEnum):
    EMERGENCY = "emergency"
    PRIORITY = "priority"
    ROUTINE = "routine"


class Deadlines(BaseModel):
    """How long a recipient has to acknowledge (accept or decline) and to answer (start)."""

    acknowledge_hours: float = Field(gt=0)
    answer_hours: float = Field(gt=0)


DEFAULT_DEADLINES = {
    Urgency.EMERGENCY: Deadlines(acknowledge_hours=4, answer_hours=24),
    Urgency.PRIORITY: Deadlines(acknowledge_hours=24, answer_hours=72),
    Urgency.ROUTINE: Deadlines(acknowledge_hours=72, answer_hours=7 * 24),
}


class LegalBasis(StrEnum):
    """Why the person's data may be shared (Moroccan law 09-08 and GDPR, art. 6)."""

    CONSENT = "consent"
    VITAL_INTEREST = "vital_interest"
    LEGAL_OBLIGATION = "legal_obligation"
    PUBLIC_INTEREST = "public_interest"


class Consent(Payload):
    """What the person agreed to: this organisation, this category of service, until when."""

    given_at: datetime
    expires_at: datetime | None = None
    scope_org: str = Field(pattern=ORG_ID, description="the organisation the data may go to")
    scope_category: str = Field(pattern=CODE, description="the service it may be used for")
    recorded_by: str = Field(min_length=1, max_length=80, description="the staff member")


class Header(Payload):
    """The clear part of an envelope: bound to the ciphertext as associated data, signed."""

    referral_id: str = Field(pattern=REFERRAL_ID)
    from_org: str = Field(pattern=ORG_ID)
    to_org: str = Field(pattern=ORG_ID)
    category: str = Field(pattern=CODE)
    urgency: Urgency
    region: str | None = Field(default=None, pattern=CODE, description="where the need is")
    legal_basis: LegalBasis
    consent: Consent | None = None
    created_at: datetime
    acknowledge_by: datetime
    answer_by: datetime
    sender_key_id: str = Field(description="the sender's Ed25519 key that signed")
    recipient_key_id: str = Field(description="the recipient's X25519 key the data key is for")
    sender_encryption_key_id: str = Field(description="the sender's own X25519 key")


class SealedPayload(Payload):
    """The person's data: XChaCha20-Poly1305 under a fresh data key, the header as AAD; the
    data key sealed (X25519 sealed box) for the recipient and for the sender."""

    nonce: str = Field(description="base64")
    ciphertext: str = Field(description="base64")
    key_for_recipient: str = Field(description="base64 sealed box of the data key")
    key_for_sender: str = Field(description="base64 sealed box of the data key")


@registry.register(
    "relais.referral.offered.v1",
    scope=Scope.NET,
    summary="An organisation refers a person's case to another one: the signed, sealed "
    "envelope (clear header, encrypted payload).",
)
class ReferralOffered(Payload):
    header: Header
    sealed: SealedPayload
    signature: str = Field(
        description='rfc8785:<base64 Ed25519> over the RFC 8785 form of {"header": …, "sealed": …}'
    )


@registry.register(
    "relais.referral.transitioned.v1",
    scope=Scope.NET,
    summary="One step of a referral's lifecycle, made by the sender's or the recipient's node "
    "and told to the other.",
)
class ReferralTransitioned(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    status: Status = Field(description="the status this step leads to")
    at: datetime
    by_org: str = Field(pattern=ORG_ID)
    reason: str | None = Field(
        default=None,
        pattern=CODE,
        description="a reason or outcome code",
        json_schema_extra=_list_step_reasons,
    )
    sealed_note: str | None = Field(
        default=None, description="base64 nonce+ciphertext of a free-text note, under the data key"
    )


@registry.register(
    "relais.referral.refused.v1",
    scope=Scope.NET,
    summary="The recipient's node did not accept an envelope (bad signature, unknown key, "
    "undecryptable): the sender learns it failed and why, without content.",
)
class ReferralRefused(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    reason: str = Field(pattern=CODE, json_schema_extra=REFUSAL_CODES)
    at: datetime


@registry.register(
    "relais.referral.consent_revoked.v1",
    scope=Scope.NET,
    summary="The person withdrew consent: the recipient's node must destroy its copy of the "
    "data key.",
)
class ConsentRevoked(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    at: datetime


@registry.register(
    "relais.referral.key_destroyed.v1",
    scope=Scope.NET,
    summary="The recipient's node confirms it destroyed its copy of the data key.",
)
class KeyDestroyed(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    at: datetime


@registry.register(
    "relais.referral.escalated.v1",
    scope=Scope.NET,
    summary="A referral's deadline passed: the secretariat is told, with metadata only.",
)
class ReferralEscalated(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    from_org: str = Field(pattern=ORG_ID)
    to_org: str = Field(pattern=ORG_ID)
    category: str = Field(pattern=CODE)
    urgency: Urgency
    status: Status
    deadline: str = Field(pattern=r"^(acknowledge|answer)$")
    due_at: datetime


MESSAGE_MAX_CHARS = 4000  # a message of the conversation: a question, an answer, not a file


@registry.register(
    "relais.referral.messaged.v1",
    scope=Scope.NET,
    summary="A message of a referral's conversation, written at one of its two organisations "
    "and told to the other: sealed under the referral's data key (its referral, id and author "
    "organisation bound as associated data), signed by the writer's node.",
)
class ReferralMessaged(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    message_id: str = Field(pattern=REFERRAL_ID, description="a UUIDv7, the writer's")
    by_org: str = Field(pattern=ORG_ID, description="the author's organisation")
    by_role: str = Field(pattern=CODE, description="the author's role (caseworker, focal_point)")
    at: datetime
    sealed_text: str = Field(
        description="base64 nonce+ciphertext of the text, under the referral's data key"
    )
    sender_key_id: str = Field(description="the writer node's Ed25519 key that signed")
    signature: str = Field(
        description="rfc8785:<base64 Ed25519> over the RFC 8785 form of every other field"
    )

    def signed_part(self) -> dict[str, object]:
        """What the signature covers: every field but the signature."""
        return self.model_dump(mode="json", exclude={"signature"})


class MessageRefusal(StrEnum):
    """Why a receiving node refused a message (``ReferralMessageRefused``): the same codes as
    a file's refusal for the same faults; no content, ever."""

    UNKNOWN_SIGNING_KEY = "unknown_signing_key"
    BAD_SIGNATURE = "bad_signature"


@registry.register(
    "relais.referral.message_refused.v1",
    scope=Scope.NET,
    summary="The receiving node refused a message of the conversation (its signature did not "
    "verify, or its signing key is not the writer's): it is neither kept nor shown there, and "
    "the writer's node marks its copy as not delivered, with the reason.",
)
class ReferralMessageRefused(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    message_id: str = Field(pattern=REFERRAL_ID)
    reason: MessageRefusal
    at: datetime


ATTACHMENT_CHUNK_BYTES = 256 * 1024  # a file's plaintext per chunk: far under 1 MiB links


class AttachmentRefusal(StrEnum):
    """Why a receiving node refused a file (``ReferralAttachmentChecked``): no content, ever."""

    UNKNOWN_SIGNING_KEY = "unknown_signing_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_OUR_KEY = "not_our_key"
    TAMPERED_CHUNK = "tampered_chunk"  # a chunk's AEAD, index or final tag does not hold
    DIGEST_MISMATCH = "digest_mismatch"  # the reassembled bytes are not the signed digest
    TYPE_NOT_ALLOWED = "type_not_allowed"  # the bytes are not of a type this node accepts
    TOO_LARGE = "too_large"  # more than this node accepts


class AttachmentState(StrEnum):
    ON_ITS_WAY = "on_its_way"  # announced or uploaded, not yet verified at the other node
    ARRIVED = "arrived"  # every chunk, the final tag, the digest and its signature verified
    REFUSED = "refused"  # parked: a chunk or the digest did not verify (nothing offered)
    ERASED = "erased"  # its key destroyed (consent withdrawn, retention)


@registry.register(
    "relais.referral.attached.v1",
    scope=Scope.NET,
    summary="A file attached to a referral at one of its two organisations, announced to the "
    "other: its per-file key sealed for the other node's X25519 key, its name, type, digest and "
    "the digest's signature sealed under that key; its bytes follow as chunks. Signed by the "
    "writer's node over every other field.",
)
class ReferralAttached(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    attachment_id: str = Field(pattern=REFERRAL_ID, description="a UUIDv7, the writer's")
    by_org: str = Field(pattern=ORG_ID, description="the organisation that attached it")
    by_role: str = Field(pattern=CODE, description="the author's role (caseworker, focal_point)")
    at: datetime
    size: int = Field(ge=1, description="bytes of the file (the only clear fact about it)")
    chunks: int = Field(ge=1, description="how many chunk events carry it")
    stream_header: str = Field(description="base64 secretstream XChaCha20-Poly1305 header")
    sealed_meta: str = Field(
        description="base64 nonce+ciphertext, under the file key, of its name, sniffed type, "
        "SHA-256 and the writer node's signature of that digest"
    )
    sealed_key: str = Field(description="base64 sealed box of the file key for the other node")
    key_id: str = Field(description="the other node's X25519 key the file key is sealed for")
    sender_key_id: str = Field(description="the writer node's Ed25519 key that signed")
    signature: str = Field(
        description="rfc8785:<base64 Ed25519> over the RFC 8785 form of every other field"
    )

    def signed_part(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"signature"})


@registry.register(
    "relais.referral.chunk.v1",
    scope=Scope.NET,
    summary="One chunk of an attached file: a secretstream XChaCha20-Poly1305 message (its "
    "index bound as associated data, the last one tagged final), readable only with the file "
    "key. Idempotent per (attachment, index).",
)
class ReferralChunk(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    attachment_id: str = Field(pattern=REFERRAL_ID)
    index: int = Field(ge=0)
    sealed: str = Field(description="base64 ciphertext of at most 256 KiB of the file")


@registry.register(
    "relais.referral.attachment_checked.v1",
    scope=Scope.NET,
    summary="The receiving node verified a file (every chunk, the final tag, the digest and "
    "its signature) and offers it, or refused it and says why: the writer's node learns which.",
)
class ReferralAttachmentChecked(Payload):
    referral_id: str = Field(pattern=REFERRAL_ID)
    attachment_id: str = Field(pattern=REFERRAL_ID)
    state: AttachmentState
    reason: AttachmentRefusal | None = None
    at: datetime


class Box(StrEnum):
    INBOX = "inbox"  # this node's organisation received it
    OUTBOX = "outbox"  # this node's organisation sent it


class ReferralView(Payload):
    """Metadata of a referral as one node sees it; never the person's data."""

    referral_id: str = Field(pattern=REFERRAL_ID)
    box: Box
    from_org: str = Field(pattern=ORG_ID)
    to_org: str = Field(pattern=ORG_ID)
    category: str = Field(pattern=CODE)
    urgency: Urgency
    status: Status
    created_by: str | None = Field(
        default=None, description="the sender's staff member (outbox only), for notifications"
    )
    acknowledge_by: datetime
    answer_by: datetime


@registry.register(
    "relais.referral.changed.v1",
    scope=Scope.LOCAL,
    service="referrals",
    summary="A referral this node holds changed (new, a status, consent): for the node's "
    "notifications and audit.",
)
class ReferralChanged(Payload):
    referral: ReferralView
    change: Change
    by_org: str = Field(pattern=ORG_ID)
    at: datetime


@registry.register(
    "relais.referral.deadline.v1",
    scope=Scope.LOCAL,
    service="referrals",
    summary="A referral's deadline is near (reminder) or passed (breach), on this node's clock.",
)
class ReferralDeadline(Payload):
    referral: ReferralView
    deadline: str = Field(pattern=r"^(acknowledge|answer)$")
    kind: str = Field(pattern=r"^(reminder|breach)$")
    due_at: datetime
