"""Joining the network: a node's application, and the credentials the hub issues for it.

``relais node init`` makes, on the new node, its key pairs (shared/crypto.py) and its NATS
user key (an nkey, made with the ``nkeys`` library; the seed stays on the node, readable by the
node only), and an application carrying only public material: the organisation's draft record
with its public keys, the nkey's public half, the hub it applies to, and an Ed25519 signature
over all of it by the key it carries, which proves the applicant holds that key.

``relais hub admit`` checks the application, admits the organisation and returns
``Credentials``: the file the node's operator carries back, naming the hub, its JetStream
domain, the network's CA certificate, the leaf's account and nkey, and until when they hold.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import UTC, datetime
from pathlib import Path

import nkeys
from pydantic import BaseModel, Field, ValidationError

from shared import crypto
from shared.contracts.directory import ORG_ID, KeyUse, MembershipStatus, OrganisationPublished
from shared.errors import Forbidden, Invalid

NKEY_SEED_FILE = "nats.nkey"
# The hub's public material, in the folder ``relais hub init`` makes: its description and the
# network CA's certificate (written by ``deploy/``, read by the hub's dashboard).
HUB_FILE, CA_CERT = "hub.json", "ca.crt"
NEW_NKEY_SEED_FILE = "nats.nkey.new"  # made by ``relais node rekey``, until the hub takes it
NKEY_PATTERN = r"^U[A-Z2-7]{55}$"


class Application(BaseModel):
    """What a new node sends to the secretariat: public material only, signed."""

    org_id: str = Field(pattern=ORG_ID)
    hub: str = Field(min_length=1, max_length=300, description="the hub address it applies to")
    nkey: str = Field(pattern=NKEY_PATTERN, description="public half of the leaf's NATS key")
    record: OrganisationPublished
    key_id: str = Field(min_length=4, max_length=64)
    signature: str = Field(min_length=10, max_length=200)

    def signed_part(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"key_id", "signature"})


class Credentials(BaseModel):
    """What the hub issues to an admitted node, for its nats-server's leaf link."""

    org_id: str = Field(pattern=ORG_ID)
    hub: str = Field(description="the hub address the node must be configured with")
    hub_leaf_urls: list[str] = Field(min_length=1)
    hub_domain: str
    hub_org: str
    account: str
    nkey: str = Field(pattern=NKEY_PATTERN)
    ca_certificate: str = Field(
        description="the network CA, PEM: the hub's certificate chains to it"
    )
    issued_at: datetime
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at


class KeyChange(BaseModel):
    """A node's request for a new NATS key (its seed believed stolen, or routine rotation),
    signed by the organisation's signing key that the directory holds."""

    org_id: str = Field(pattern=ORG_ID)
    nkey: str = Field(pattern=NKEY_PATTERN, description="public half of the new NATS key")
    requested_at: datetime
    key_id: str = Field(min_length=4, max_length=64)
    signature: str = Field(min_length=10, max_length=200)

    def signed_part(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"key_id", "signature"})


def make_key_change(keys: crypto.NodeKeys, org_id: str, nkey: str) -> KeyChange:
    draft = {"org_id": org_id, "nkey": nkey, "requested_at": datetime.now(UTC)}
    unsigned = KeyChange(**draft, key_id="unsigned", signature="-" * 10)
    key_id, signature = keys.sign(unsigned.signed_part())
    return unsigned.model_copy(update={"key_id": key_id, "signature": signature})


def check_key_change(change: KeyChange, record: OrganisationPublished) -> None:
    """``Forbidden`` unless ``change`` is signed by a signing key of ``record``."""
    if change.org_id != record.org_id:
        raise Invalid("the key change is for another organisation", field="key_change.org_id")
    _check_nkey(change.nkey)
    key = next(
        (k for k in record.keys if k.use is KeyUse.SIGNING and k.key_id == change.key_id), None
    )
    if key is None:
        raise Forbidden(
            "the key change is not signed with a key the directory holds for the organisation",
            field="key_change.key_id",
        )
    try:
        crypto.verify(change.signed_part(), change.signature, key.public_key)
    except Forbidden:
        raise Forbidden(
            "the key change's signature does not match the organisation's key",
            field="key_change.signature",
        ) from None


def load_or_create_nkey(folder: Path, name: str = NKEY_SEED_FILE) -> nkeys.KeyPair:
    """The node's NATS user key from ``folder``, made there (readable by this user only)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(seed)
    return nkeys.from_seed(bytearray(path.read_bytes().strip()))


def nkey_public(pair: nkeys.KeyPair) -> str:
    return bytes(pair.public_key).decode()


def make_application(
    keys: crypto.NodeKeys, nkey: str, record: OrganisationPublished, hub: str
) -> Application:
    draft = {"org_id": record.org_id, "hub": hub, "nkey": nkey, "record": record}
    unsigned = Application(**draft, key_id="unsigned", signature="-" * 10)
    key_id, signature = keys.sign(unsigned.signed_part())
    return unsigned.model_copy(update={"key_id": key_id, "signature": signature})


def read_application(raw: bytes | str) -> Application:
    """Parse and check an application; ``Invalid`` or ``Forbidden`` naming what is wrong."""
    try:
        application = Application.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "application"
        raise Invalid(f"malformed application: {where}: {first['msg']}", field=where) from None
    check_application(application)
    return application


def check_application(application: Application) -> None:
    record = application.record
    if record.org_id != application.org_id:
        raise Invalid("the record's org_id differs from the application's", field="record.org_id")
    if record.status is not MembershipStatus.APPLICANT:
        raise Invalid("an application's record must have the status applicant", field="status")
    _check_nkey(application.nkey)
    signing = [k for k in record.keys if k.use is KeyUse.SIGNING]
    if not any(k.use is KeyUse.ENCRYPTION for k in record.keys) or not signing:
        raise Invalid("an application carries an Ed25519 and an X25519 key", field="record.keys")
    key = next((k for k in signing if k.key_id == application.key_id), None)
    if key is None:
        raise Forbidden("the application is signed with a key it does not carry", field="key_id")
    if crypto.key_id(base64.b64decode(key.public_key)) != key.key_id:
        raise Forbidden("a key id does not match its key", field="record.keys")
    try:
        crypto.verify(application.signed_part(), application.signature, key.public_key)
    except Forbidden:
        raise Forbidden(
            "the application's signature does not match its keys", field="signature"
        ) from None


def _check_nkey(public: str) -> None:
    """The nkey's own checksum, through the library's decoding of seeds' sibling format."""
    try:
        raw = base64.b32decode(public + "=" * (-len(public) % 8))
    except binascii.Error:
        raise Invalid("the NATS key is not a valid nkey", field="nkey") from None
    if nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        raise Invalid("the NATS key's checksum does not match", field="nkey")
