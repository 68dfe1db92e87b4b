"""A referral's file, sealed (issue 19), with PyNaCl; no primitive of our own.

- a fresh 32-byte key per file;
- the bytes under libsodium's secretstream XChaCha20-Poly1305, in chunks of
  ``ATTACHMENT_CHUNK_BYTES``: each chunk's index (and its file) bound as associated data, the
  last one tagged final, so a chunk altered, dropped, repeated, moved or cut off fails;
- its name, sniffed type, SHA-256 and the writer node's Ed25519 signature of that digest
  sealed under the same key (XChaCha20-Poly1305, its referral, file and writer bound), so the
  hub sees neither the name nor a digest it could match against a file it knows;
- the file key sealed (X25519 sealed box) for each node that may read it, as the payload's
  data key is: destroying a node's sealed copy erases the file there (crypto-shredding).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import Aead
from nacl.utils import random

from shared.canonical import jcs
from shared.contracts.referrals import ATTACHMENT_CHUNK_BYTES
from shared.errors import Forbidden

KEY_BYTES = bindings.crypto_secretstream_xchacha20poly1305_KEYBYTES
_FINAL = bindings.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_MESSAGE = bindings.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE


class Tampered(Forbidden):
    """A chunk does not open: altered, out of place, missing, or the stream cut short."""


@dataclass(frozen=True)
class SealedFile:
    key: bytes
    header: bytes
    chunks: list[bytes]
    sha256: str  # of the plaintext, hex


def _chunk_context(attachment_id: str, index: int) -> bytes:
    return jcs({"attachment_id": attachment_id, "index": index})


def seal_file(
    plain: bytes, *, attachment_id: str, chunk_bytes: int = ATTACHMENT_CHUNK_BYTES
) -> SealedFile:
    """Encrypt ``plain`` (not empty) under a fresh key, chunk by chunk."""
    key = random(KEY_BYTES)
    state = bindings.crypto_secretstream_xchacha20poly1305_state()
    header = bindings.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    pieces = [plain[i : i + chunk_bytes] for i in range(0, len(plain), chunk_bytes)] or [b""]
    chunks = [
        bindings.crypto_secretstream_xchacha20poly1305_push(
            state,
            piece,
            _chunk_context(attachment_id, index),
            _FINAL if index == len(pieces) - 1 else _MESSAGE,
        )
        for index, piece in enumerate(pieces)
    ]
    return SealedFile(key, header, chunks, hashlib.sha256(plain).hexdigest())


def open_file(key: bytes, header: bytes, chunks: list[bytes], *, attachment_id: str) -> bytes:
    """The file's bytes, every chunk verified in order; ``Tampered`` if any chunk does not
    open at its index, if the final tag is not on the last one, or if the stream is cut."""
    state = bindings.crypto_secretstream_xchacha20poly1305_state()
    try:
        bindings.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    except (CryptoError, ValueError) as exc:
        raise Tampered("the file's stream header does not open") from exc
    plain: list[bytes] = []
    for index, chunk in enumerate(chunks):
        try:
            piece, tag = bindings.crypto_secretstream_xchacha20poly1305_pull(
                state, chunk, _chunk_context(attachment_id, index)
            )
        except (CryptoError, ValueError) as exc:
            raise Tampered(f"chunk {index} of the file does not open") from exc
        last = index == len(chunks) - 1
        if (tag == _FINAL) != last:
            raise Tampered(f"chunk {index}: the stream's end is not where the file ends")
        plain.append(piece)
    if not chunks:
        raise Tampered("the file has no chunk")
    return b"".join(plain)


def _meta_context(referral_id: str, attachment_id: str, by_org: str) -> bytes:
    return jcs({"referral_id": referral_id, "attachment_id": attachment_id, "by_org": by_org})


def seal_meta(
    key: bytes, meta: dict[str, Any], *, referral_id: str, attachment_id: str, by_org: str
) -> str:
    sealed = Aead(key).encrypt(
        json.dumps(meta, ensure_ascii=False).encode(),
        _meta_context(referral_id, attachment_id, by_org),
    )
    return base64.b64encode(bytes(sealed)).decode()


def open_meta(
    key: bytes, sealed: str, *, referral_id: str, attachment_id: str, by_org: str
) -> dict[str, Any]:
    try:
        raw = base64.b64decode(sealed)
        plain = Aead(key).decrypt(
            raw[Aead.NONCE_SIZE :],
            _meta_context(referral_id, attachment_id, by_org),
            raw[: Aead.NONCE_SIZE],
        )
        meta = json.loads(plain)
    except (CryptoError, ValueError) as exc:
        raise Tampered("the file's description does not open") from exc
    if not isinstance(meta, dict):
        raise Tampered("the file's description is not a set of fields")
    return meta


def digest_document(
    *, referral_id: str, attachment_id: str, by_org: str, sha256: str, size: int
) -> dict[str, Any]:
    """What the writer's node signs about the file's bytes."""
    return {
        "referral_id": referral_id,
        "attachment_id": attachment_id,
        "by_org": by_org,
        "sha256": sha256,
        "size": size,
    }


def seal_key(key: bytes, public_b64: str) -> str:
    return base64.b64encode(
        SealedBox(PublicKey(base64.b64decode(public_b64))).encrypt(key)
    ).decode()


def open_key(sealed: str, private: PrivateKey) -> bytes:
    try:
        return SealedBox(private).decrypt(base64.b64decode(sealed))
    except (CryptoError, ValueError) as exc:
        raise Tampered("the file key is not sealed for this node's key") from exc
