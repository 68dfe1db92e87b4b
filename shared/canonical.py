"""The bytes a signature or a chain hash covers: RFC 8785, the JSON Canonicalization Scheme.

A verifier in any language can rebuild them with an RFC 8785 library: keys sorted by their
UTF-16 code units, no whitespace, strings in UTF-8 with the minimal escapes, numbers as
ECMAScript prints them (``1.0`` is ``1``, ``1e16`` is ``10000000000000000``). The ``rfc8785``
package does it, or ``json.dumps`` where the two give the same bytes.

Before RFC 8785, Relais signed Python's ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``: the ``LEGACY`` form, which other languages cannot be relied on to
reproduce (numbers, key order beyond the BMP). What was made then still verifies: every
signed or hashed thing says which form it used (``FORMS``); producers write ``CURRENT`` only.
Pure: no I/O, so that domain modules may use it.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from shared.errors import Invalid

RFC8785 = "rfc8785"
LEGACY = "legacy"
CURRENT = RFC8785
FORMS = (RFC8785, LEGACY)


class NotCanonical(Invalid):
    """A document RFC 8785 cannot represent, so nobody could check a signature over it."""


_INT_LIMIT = 2**53 - 1


def _same_in_both(value: Any) -> bool:
    """True if ``json.dumps`` writes ``value`` exactly as RFC 8785 does: text, whole numbers
    within ±(2**53 - 1), booleans, null, and lists and objects of them with ASCII keys. Both
    escape text alike (the two-character escapes, ``\\u00xx`` for other controls, nothing else
    with ``ensure_ascii=False``) and write such numbers alike; ASCII keys sort the same by code
    point as by UTF-16 unit. Numbers with a fraction and other keys go to ``rfc8785``."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_INT_LIMIT <= value <= _INT_LIMIT
    if isinstance(value, list):
        return all(_same_in_both(item) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key.isascii() and _same_in_both(item)
            for key, item in value.items()
        )
    return False


def jcs(document: Any) -> bytes:
    """RFC 8785 bytes of ``document`` (dicts with string keys, lists, str, int, float, bool,
    None); ``NotCanonical`` naming what cannot be represented."""
    if _same_in_both(document):
        # The C encoder, about five times faster than rfc8785's pure Python: a long audit
        # chain verifies at the speed it did (tests/unit/test_canonical.py checks they agree).
        try:
            return legacy(document)
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 names it
    try:
        return rfc8785.dumps(document)
    except rfc8785.IntegerDomainError:
        # The library's message holds the value; a detail never does (it may be anything).
        raise NotCanonical(
            "a whole number beyond ±(2**53 - 1) has no exact JSON form (RFC 8785): send it as text"
        ) from None
    except rfc8785.FloatDomainError:
        raise NotCanonical("NaN and infinity have no JSON form (RFC 8785)") from None
    except rfc8785.CanonicalizationError as exc:
        # "object keys must be strings", "unsupported type: <class>", "non-UTF-8 codepoints"
        raise NotCanonical(f"no RFC 8785 form: {exc}") from None


def legacy(document: Any) -> bytes:
    """The form signed before RFC 8785; for verifying old records only, never for new ones."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode(document: Any, form: str = CURRENT) -> bytes:
    """``document`` in ``form`` (one of ``FORMS``)."""
    if form == RFC8785:
        return jcs(document)
    if form == LEGACY:
        return legacy(document)
    raise NotCanonical(f"unknown canonical form {form[:20]!r}: expected one of {FORMS}")
