"""The canonical form signatures and chain hashes cover: RFC 8785's own test vectors, what it
refuses, and the legacy form older records were made in."""

from __future__ import annotations

import json
import struct
from enum import IntEnum, StrEnum

import pytest
import rfc8785

from shared import canonical
from shared.canonical import NotCanonical, jcs
from shared.errors import Invalid


def test_the_rfc_example_of_section_3_2_2() -> None:
    # RFC 8785 §3.2.2: the input as the RFC writes it (JSON text), and the one output.
    source = r"""{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"""
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert jcs(json.loads(source)) == expected.encode()


def test_the_rfc_sorting_example_of_section_3_2_3() -> None:
    # Keys sorted by UTF-16 code units: the emoji (a surrogate pair, D83D) before U+FB33,
    # where sorting by code points (Python's sorted, the legacy form) puts it last.
    source = r"""{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"""
    document = json.loads(source)
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert jcs(document) == expected.encode()
    assert jcs(document) != canonical.legacy(document)  # the order the legacy form got wrong


# RFC 8785 Appendix B: IEEE 754 doubles (hex) and how they are written.
NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "written"), NUMBERS)
def test_numbers_are_written_as_rfc_8785_appendix_b_says(bits: str, written: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(bits))
    assert jcs(number) == written.encode()


def test_whole_floats_and_large_exponents_differ_from_the_legacy_form() -> None:
    # What a JavaScript or Go verifier would get wrong against the legacy bytes.
    assert (
        jcs({"lat": 33.0, "big": 1e16, "small": 1e-7})
        == b'{"big":10000000000000000,"lat":33,"small":1e-7}'
    )
    assert canonical.legacy({"lat": 33.0}) == b'{"lat":33.0}'


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (float("nan"), "NaN and infinity"),
        (float("inf"), "NaN and infinity"),
        (2**53, "beyond ±(2**53 - 1)"),
        ({1: "one"}, "object keys must be strings"),
        ({"a": {1, 2}}, "unsupported type"),
        ("\ud800", "non-UTF-8"),
    ],
)
def test_what_rfc_8785_cannot_represent_is_refused_as_invalid_input(
    value: object, says: str
) -> None:
    with pytest.raises(NotCanonical) as refused:
        jcs(value)
    assert isinstance(refused.value, Invalid) and says in refused.value.detail
    assert "9007199254740992" not in refused.value.detail  # a detail never repeats the value


def test_the_largest_exact_whole_number_is_still_accepted() -> None:
    assert jcs({"n": 2**53 - 1}) == b'{"n":9007199254740991}'


def test_only_known_forms_are_used() -> None:
    document = {"b": 1, "a": "é"}
    assert canonical.encode(document) == jcs(document)
    assert (
        canonical.encode(document, canonical.LEGACY)
        == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    with pytest.raises(NotCanonical, match="unknown canonical form"):
        canonical.encode(document, "json5")


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "document",
    [
        {"seq": 2**53 - 1, "low": -(2**53) + 1, "at": "2026-12-03T09:30:00.123456Z"},
        {"text": "".join(chr(c) for c in range(0x30)) + "\x7f\u2028\u2029\ufeff/\\\"'"},
        {"name": {"ar": "أمينة", "fr": "Amína", "emoji": "👩‍⚕️ 😀"}, "tags": ["a", 1, None]},
        {"flags": [True, False, None], "nested": [[{"z": 1, "a": [{}]}], []], "": ""},
        {"enum": Colour.RED, "level": Level.HIGH, "Zed": 1, "alpha": 2, "_": 3, "~": 4},
        [],
        "just text",
        0,
    ],
)
def test_the_fast_path_writes_exactly_what_rfc8785_writes(document: object) -> None:
    assert canonical._same_in_both(document)
    assert jcs(document) == rfc8785.dumps(document)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "document",
    [{"x": 1.0}, {"x": 2**53}, {"\u20ac": 1}, {1: "one"}, ("tuple",), {"x": [0.5]}],
)
def test_what_the_fast_path_leaves_to_rfc8785(document: object) -> None:
    assert not canonical._same_in_both(document)
