"""What every service tells its node's audit service: one record per action or read.

A service writes ``AuditRecorded`` into its own outbox in the transaction of the action it
records (``shared.audit_trail.record``), so an action is never without its record; the audit
service chains the records in arrival order. A record holds a digest of the content, never
the content: the person's data stays out of the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field

from shared.contracts.directory import ORG_ID
from shared.events import Payload, Scope, registry


class Outcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"  # authorisation or validation said no
    FAILED = "failed"  # e.g. a tampered envelope


@registry.register(
    "relais.audit.recorded.v1",
    scope=Scope.LOCAL,
    summary="A service records an action or a read for the node's tamper-evident audit log.",
)
class AuditRecorded(Payload):
    at: datetime
    actor_org: str = Field(pattern=ORG_ID)
    actor: str = Field(
        min_length=1,
        max_length=120,
        description="user:<username>, token:<id> (a member system) or system:<service>",
    )
    action: str = Field(
        pattern=r"^[a-z_]+\.[a-z_]+$", description="<object kind>.<verb>, e.g. referral.accepted"
    )
    object: str = Field(
        min_length=1, max_length=200, description="<kind>:<id>, e.g. referral:<uuid>"
    )
    digest: str = Field(
        default="", pattern=r"^$|^[0-9a-f]{64}$", description="SHA-256 of the canonical content"
    )
    outcome: Outcome = Outcome.OK


@registry.register(
    "relais.audit.checkpointed.v1",
    scope=Scope.NET,
    summary="A node signs the head of its audit chain (sequence number and hash) and sends it "
    "to the hub, which keeps every node's checkpoints to check their chains against.",
)
class AuditCheckpointed(Payload):
    org: str = Field(pattern=ORG_ID)
    node_id: str = Field(pattern=ORG_ID)
    seq: int = Field(ge=0, description="the last record the checkpoint covers")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="that record's hash")
    at: datetime
    key_id: str = Field(min_length=4, max_length=64, description="the node's Ed25519 key")
    signature: str = Field(
        min_length=10,
        max_length=200,
        description="rfc8785:<base64 Ed25519> over the RFC 8785 form of checkpoint_document()",
    )

    def document(self) -> dict[str, object]:
        return checkpoint_document(self.org, self.node_id, self.seq, self.hash, self.at)


def checkpoint_document(
    org: str, node_id: str, seq: int, hash: str, at: datetime
) -> dict[str, object]:
    """What a checkpoint's signature covers (its RFC 8785 form: ``shared.crypto.sign``)."""
    return {
        "org": org,
        "node_id": node_id,
        "seq": seq,
        "hash": hash,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
