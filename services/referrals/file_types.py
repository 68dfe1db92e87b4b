"""What a file attached to a referral may be (issue 19): its type told by its first bytes,
never by its name or by what the uploader declares, checked against the node's allow-list
(``RELAIS_ATTACHMENT_TYPES``) and its size limit (``RELAIS_ATTACHMENT_MAX_MB``). Pure."""

from __future__ import annotations

from collections.abc import Iterable

from shared.errors import Invalid

MIB = 1024 * 1024
# The types this module can recognise, by their magic bytes; text is recognised as UTF-8.
MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}
TEXT = "text/plain"
KNOWN = (*MAGIC, TEXT)
DEFAULT_TYPES = ("application/pdf", "image/jpeg", "image/png", TEXT)
_TEXT_CONTROLS = set(range(32)) - {9, 10, 12, 13}
# Declared types that say nothing about the content.
_UNDECLARED = ("", "application/octet-stream", "binary/octet-stream")


def sniff(content: bytes) -> str | None:
    """The type of ``content`` from its bytes, or None if it is none this node knows."""
    for kind, signatures in MAGIC.items():
        if content.startswith(signatures):
            return kind
    return TEXT if _is_text(content) else None


def _is_text(content: bytes) -> bool:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) in _TEXT_CONTROLS for c in text)


def check_file(
    content: bytes, *, declared: str | None, allowed: Iterable[str], max_mb: float
) -> str:
    """The sniffed type of an upload that may be attached; ``Invalid`` naming the reason."""
    if not content:
        raise Invalid("the file is empty", field="file")
    limit = int(max_mb * MIB)
    if len(content) > limit:
        raise Invalid(
            f"the file is too large: {len(content)} bytes, at most {limit} ({max_mb:g} MB)",
            field="file",
        )
    kind = sniff(content)
    allowed = tuple(allowed)
    if kind is None or kind not in allowed:
        what = "of a type this node does not recognise" if kind is None else f"a {kind} file"
        raise Invalid(
            f"the file's type is not allowed: its content is {what}; allowed: "
            + ", ".join(allowed),
            field="file",
        )
    said = (declared or "").split(";")[0].strip().lower()
    if said not in _UNDECLARED and said != kind:
        raise Invalid(
            f"the file's content does not match its declared type: declared {said}, "
            f"its content is {kind}",
            field="file",
        )
    return kind


def clean_filename(name: str | None) -> str:
    """The name a file is kept and offered under: its last path part, without control
    characters, at most 200 characters; ``Invalid`` if nothing is left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in base if c.isprintable()).strip()[:200]
    if not kept or kept in (".", ".."):
        raise Invalid("the file needs a name", field="filename")
    return kept
