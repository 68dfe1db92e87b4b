"""An organisation's key pairs, made and kept on its own node (DESIGN.md §5).

Ed25519 signs what the node sends (the hub checks a profile change against the key the
directory holds); X25519 receives the data keys of referrals (the referrals issue). Private
keys are files readable by the node's user only and never leave the node; the public halves,
with key ids and validity, are published in the directory. PyNaCl does the cryptography.

A signature is ``rfc8785:<base64 Ed25519>`` over the RFC 8785 bytes of the document
(``shared.canonical``); a bare ``<base64>`` is one made before, over the legacy form, and is
still accepted. The prefix is not covered by the signature and needs not be: the two forms give
the same bytes only for the same document, so relabelling one cannot forge anything.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from shared import canonical
from shared.errors import Forbidden

SIGNING_FILE, ENCRYPTION_FILE = "signing.key", "encryption.key"
# ``relais node rotate-keys`` makes the next pair beside the current one; the node takes it up
# once the hub has published it, and the pair it replaces goes to ``retired/`` (kept to open
# what was sealed for it and to check what it signed).
PENDING_SUFFIX, RETIRED_DIR = ".new", "retired"
# A retired signing key's public half, kept when its private half is destroyed.
PUBLIC_SUFFIX = ".pub"
# Reads of a folder whose files move under them (a rotation taken up by another process).
_READ_TRIES = 5


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def key_id(public: bytes) -> str:
    """A short, stable name for a public key: the start of its SHA-256, URL-safe."""
    return base64.urlsafe_b64encode(hashlib.sha256(public).digest()[:12]).decode().rstrip("=")


@dataclass(frozen=True)
class NodeKeys:
    """The node's key ring at one moment: the current pair, which signs and is published as
    the one to seal for, and the others it still holds (the next pair, not yet published,
    and the retired ones), which only open and verify."""

    signing: SigningKey
    encryption: PrivateKey
    created_at: datetime
    other_signing: tuple[SigningKey, ...] = ()
    other_encryption: tuple[PrivateKey, ...] = ()
    # Retired signing keys whose private half was destroyed (``forget_retired``): their
    # public half still checks what they signed (the audit chain's old checkpoints).
    other_verifying: tuple[VerifyKey, ...] = ()

    @classmethod
    def load_or_create(cls, folder: Path) -> NodeKeys:
        """The node's keys from ``folder``, made there (readable by this user only) if absent.

        Another process may be taking up the next pair meanwhile (``take_up_next_pair``
        moves its files): a file gone between listing and reading means the folder changed
        under this read, which is made again on what it holds now."""
        for _ in range(_READ_TRIES - 1):
            with contextlib.suppress(FileNotFoundError):
                return cls._load_or_create(folder)
        return cls._load_or_create(folder)

    @classmethod
    def _load_or_create(cls, folder: Path) -> NodeKeys:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        signing_path, encryption_path = folder / SIGNING_FILE, folder / ENCRYPTION_FILE
        if not signing_path.exists():
            _write_secret(signing_path, bytes(SigningKey.generate()))
        if not encryption_path.exists():
            _write_secret(encryption_path, bytes(PrivateKey.generate()))
        created = datetime.fromtimestamp(signing_path.stat().st_mtime, UTC)
        retired = folder / RETIRED_DIR
        held = sorted(retired.glob("*.key")) if retired.is_dir() else []
        held += [p for p in (_pending(signing_path), _pending(encryption_path)) if p.exists()]
        publics = sorted(retired.glob(f"signing-*{PUBLIC_SUFFIX}")) if retired.is_dir() else []
        return cls(
            SigningKey(signing_path.read_bytes()),
            PrivateKey(encryption_path.read_bytes()),
            created,
            tuple(SigningKey(p.read_bytes()) for p in held if p.name.startswith("signing")),
            tuple(PrivateKey(p.read_bytes()) for p in held if p.name.startswith("encryption")),
            tuple(VerifyKey(p.read_bytes()) for p in publics),
        )

    @property
    def signing_public(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def encryption_public(self) -> bytes:
        return bytes(self.encryption.public_key)

    def public_keys(self) -> list[dict[str, str]]:
        """The current pair's public halves as the directory publishes them (``PublicKey``)."""
        return _public(self.signing, self.encryption, self.created_at)

    def encryption_key(self, wanted: str) -> PrivateKey | None:
        """The X25519 private key whose public half is named ``wanted``: the current one, the
        next or a retired one (what was sealed for it before a rotation still opens)."""
        for key in (self.encryption, *self.other_encryption):
            if key_id(bytes(key.public_key)) == wanted:
                return key
        return None

    def verifying_keys(self) -> dict[str, str]:
        """Every Ed25519 public key this node signed or will sign with, base64, by key id."""
        keys = (
            *(k.verify_key for k in (self.signing, *self.other_signing)),
            *self.other_verifying,
        )
        return {key_id(bytes(k)): _b64(bytes(k)) for k in keys}

    def sign(self, document: Any) -> tuple[str, str]:
        """(key id, ``rfc8785:<base64>`` signature) over the RFC 8785 form of ``document``;
        ``canonical.NotCanonical`` (invalid input) if it has none."""
        signature = self.signing.sign(canonical.encode(document)).signature
        return key_id(self.signing_public), f"{canonical.CURRENT}:{_b64(signature)}"


class KeyRing:
    """The node's keys as its services hold them: read again from the folder when it changes,
    so that every service (in this process or another) signs with the new pair once the
    directory publishes it. ``current()`` is one consistent snapshot (a key id and the
    signature it names come from the same pair)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._keys = NodeKeys.load_or_create(folder)
        self._stamp = self._seen()

    def _seen(self) -> tuple[int, ...]:
        folders = (self.folder, self.folder / RETIRED_DIR)
        return tuple(f.stat().st_mtime_ns if f.is_dir() else 0 for f in folders)

    def current(self) -> NodeKeys:
        stamp = self._seen()
        if stamp != self._stamp:
            self._keys, self._stamp = NodeKeys.load_or_create(self.folder), stamp
        return self._keys

    # What callers used on the single pair, on the current snapshot.
    @property
    def signing_public(self) -> bytes:
        return self.current().signing_public

    @property
    def encryption_public(self) -> bytes:
        return self.current().encryption_public

    def public_keys(self) -> list[dict[str, str]]:
        return self.current().public_keys()

    def verifying_keys(self) -> dict[str, str]:
        return self.current().verifying_keys()

    def sign(self, document: Any) -> tuple[str, str]:
        return self.current().sign(document)

    def take_up(self, published: set[str]) -> bool:
        """The next pair becomes the current one once the directory publishes it (its key ids
        among ``published``); True if it did now."""
        return take_up_next_pair(self.folder, published)


def make_next_pair(folder: Path) -> list[dict[str, str]]:
    """The next pair's public halves (``PublicKey`` fields, valid from now), made in
    ``folder`` beside the current one if it is not there yet (a retried rotation keeps it)."""
    NodeKeys.load_or_create(folder)
    signing_path = _pending(folder / SIGNING_FILE)
    encryption_path = _pending(folder / ENCRYPTION_FILE)
    if not signing_path.exists():
        _write_secret(signing_path, bytes(SigningKey.generate()))
    if not encryption_path.exists():
        _write_secret(encryption_path, bytes(PrivateKey.generate()))
    return _public(
        SigningKey(signing_path.read_bytes()),
        PrivateKey(encryption_path.read_bytes()),
        datetime.fromtimestamp(signing_path.stat().st_mtime, UTC),
    )


def take_up_next_pair(folder: Path, published: set[str]) -> bool:
    """Make the next pair the current one if both its keys are among ``published`` (the key
    ids the directory holds for the organisation); the pair it replaces is kept in
    ``retired/``. True if it did; a retry after a crash half-way finishes the job."""
    pending = [_pending(folder / SIGNING_FILE), _pending(folder / ENCRYPTION_FILE)]
    if not all(p.exists() for p in pending):
        return False
    signing, encryption = SigningKey(pending[0].read_bytes()), PrivateKey(pending[1].read_bytes())
    ids = {key_id(bytes(signing.verify_key)), key_id(bytes(encryption.public_key))}
    if not ids <= published:
        return False
    retired = folder / RETIRED_DIR
    retired.mkdir(exist_ok=True, mode=0o700)
    signing_raw = (folder / SIGNING_FILE).read_bytes()
    encryption_raw = (folder / ENCRYPTION_FILE).read_bytes()
    for name, raw, public in (
        ("signing", signing_raw, bytes(SigningKey(signing_raw).verify_key)),
        ("encryption", encryption_raw, bytes(PrivateKey(encryption_raw).public_key)),
    ):
        kept = retired / f"{name}-{key_id(public)}.key"
        if not kept.exists():
            _write_secret(kept, raw)
    os.replace(pending[0], folder / SIGNING_FILE)
    os.replace(pending[1], folder / ENCRYPTION_FILE)
    return True


def held_states(folder: Path) -> dict[str, str]:
    """What the folder holds of each key, by key id: ``current`` (signs, is sealed for),
    ``next`` (made by a rotation, not published yet), ``retired`` (replaced, its private half
    kept to open and check what came before) or ``forgotten`` (a retired signing key whose
    private half was destroyed, its public half kept)."""
    keys = NodeKeys.load_or_create(folder)
    states: dict[str, str] = {}
    for path in (_pending(folder / SIGNING_FILE), _pending(folder / ENCRYPTION_FILE)):
        if path.exists():
            raw = path.read_bytes()
            is_signing = path.name.startswith("signing")
            public = bytes(SigningKey(raw).verify_key if is_signing else PrivateKey(raw).public_key)
            states[key_id(public)] = "next"
    for signing in keys.other_signing:
        states.setdefault(key_id(bytes(signing.verify_key)), "retired")
    for encryption in keys.other_encryption:
        states.setdefault(key_id(bytes(encryption.public_key)), "retired")
    for verifying in keys.other_verifying:
        states[key_id(bytes(verifying))] = "forgotten"
    states[key_id(keys.signing_public)] = "current"
    states[key_id(keys.encryption_public)] = "current"
    return states


def retired_encryption_keys(folder: Path) -> dict[str, Path]:
    """The retired X25519 private keys the folder still holds, by key id (their files)."""
    retired = folder / RETIRED_DIR
    found = sorted(retired.glob("encryption-*.key")) if retired.is_dir() else []
    return {key_id(bytes(PrivateKey(p.read_bytes()).public_key)): p for p in found}


def forget_retired(folder: Path) -> list[str]:
    """Destroy every retired private key in ``folder`` (the caller has checked that nothing
    still needs them); a signing key's public half stays, to check what it signed. The key
    ids forgotten. The files are unlinked: what the disk keeps of them afterwards is the
    storage's business (deploy/README.md, Key rotation)."""
    retired = folder / RETIRED_DIR
    if not retired.is_dir():
        return []
    forgotten = []
    for path in sorted(retired.glob("*.key")):
        if path.name.startswith("signing"):
            public = bytes(SigningKey(path.read_bytes()).verify_key)
            kept = path.with_suffix(PUBLIC_SUFFIX)
            if not kept.exists():
                _write_secret(kept, public)
        else:
            public = bytes(PrivateKey(path.read_bytes()).public_key)
        path.unlink()
        forgotten.append(key_id(public))
    return forgotten


def _pending(path: Path) -> Path:
    return path.with_name(path.name + PENDING_SUFFIX)


def _public(signing: SigningKey, encryption: PrivateKey, since: datetime) -> list[dict[str, str]]:
    signing_public, encryption_public = bytes(signing.verify_key), bytes(encryption.public_key)
    return [
        {
            "key_id": key_id(signing_public),
            "use": "ed25519",
            "public_key": _b64(signing_public),
            "valid_from": since.isoformat(),
        },
        {
            "key_id": key_id(encryption_public),
            "use": "x25519",
            "public_key": _b64(encryption_public),
            "valid_from": since.isoformat(),
        },
    ]


def verify(document: Any, signature: str, public_key: str) -> None:
    """Check a signature made by ``sign``, now or before RFC 8785 (a bare base64); ``Forbidden``
    if it does not hold, naming why when the document or the signature cannot be read."""
    form, _, raw = signature.rpartition(":")
    try:
        signed = canonical.encode(document, form or canonical.LEGACY)
    except canonical.NotCanonical as exc:
        raise Forbidden(f"the signature cannot be checked: {exc.detail}") from None
    except (TypeError, ValueError) as exc:  # legacy: json.dumps refusing, a lone surrogate
        raise Forbidden("the signature cannot be checked: the document is not JSON") from exc
    try:
        VerifyKey(base64.b64decode(public_key)).verify(signed, base64.b64decode(raw))
    except (BadSignatureError, ValueError) as exc:
        raise Forbidden("the signature does not match the sender's key") from exc


def _write_secret(path: Path, raw: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(raw)
