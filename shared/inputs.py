"""Text PostgreSQL cannot store, refused wherever strings enter a node (HTTP and NATS); and
values that would be converted rather than refused (a number as a time, 0 as false).

PostgreSQL's ``text`` refuses NUL and UTF-8 cannot carry a lone surrogate: either raises deep
inside a query (a 500 and a traceback an anonymous caller can repeat). The other C0 controls
are stored, but no person types them and they hide in logs and pages: they are refused too,
except tab, line feed and carriage return, which free text legitimately holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Strict

# C0 controls but \t \n \r, DEL, and the UTF-16 surrogates (lone ones survive json.loads).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


# A number where a time is expected: pydantic would read it as seconds since 1970.
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def _written_time(value: Any) -> Any:
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("a time is written in ISO 8601 (2026-12-03T15:00:00Z), not as a number")
    return value


def _with_zone(value: datetime) -> datetime:
    if value.tzinfo is None:  # compared with the stored (aware) times it would fail
        raise ValueError("a time needs its zone: end it with Z or an offset such as +01:00")
    return value


# A time given by a caller (query or body): ISO 8601 with its zone, never a number read as a
# date (or a time without a zone, which cannot be compared with the stored ones).
Moment = Annotated[datetime, BeforeValidator(_written_time), AfterValidator(_with_zone)]
# A yes/no given in a JSON body: true or false only, never 0, 1 or "yes" read as one.
Flag = Annotated[bool, Strict()]


def unstorable(text: str) -> bool:
    """Whether ``text`` holds a character refused at the edge."""
    return _UNSTORABLE.search(text) is not None


def offending_fields(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[str]:
    """The dotted path of every string (key or value) in a JSON value that is unstorable."""
    if isinstance(value, str):
        if unstorable(value):
            yield ".".join(str(p) for p in path) or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and unstorable(key):
                yield ".".join(str(p) for p in (*path, "(key)"))
            yield from offending_fields(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from offending_fields(item, (*path, index))


def first_offending(value: Any) -> str | None:
    return next(offending_fields(value), None)
