"""Text PostgreSQL cannot store, refused wherever strings enter a node (HTTP and NATS).

PostgreSQL's ``text`` refuses NUL and UTF-8 cannot carry a lone surrogate: either raises deep
inside a query (a 500 and a traceback an anonymous caller can repeat). The other C0 controls
are stored, but no person types them and they hide in logs and pages: they are refused too,
except tab, line feed and carriage return, which free text legitimately holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# C0 controls but \t \n \r, DEL, and the UTF-16 surrogates (lone ones survive json.loads).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


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
