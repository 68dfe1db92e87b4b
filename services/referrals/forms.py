"""Minimum data: the payload fields each service category allows, and the check of a payload
against them (data in ``data/forms.json``, reasons in ``data/reasons.json``). Pure.

A payload carrying any field its category does not list is refused, naming the field: data
that is not needed is never collected, and never trimmed in silence either.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.referrals import is_form_date
from shared.errors import Invalid

DATA = Path(__file__).parent / "data"
# Control characters other than tab and newlines have no place in a case note.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Labels(BaseModel):
    model_config = ConfigDict(frozen=True)
    fr: str
    ar: str
    en: str


class FieldSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: Literal["string", "text", "date", "integer", "boolean", "choice"]
    required: bool
    label: Labels
    max_length: int | None = None
    choices: list[str] | None = None
    min: int | None = None
    max: int | None = None


class Form(BaseModel):
    """What a referral of one category may carry."""

    model_config = ConfigDict(frozen=True)

    category: str
    fields: list[FieldSpec]

    def check(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload if it fits this form; ``Invalid`` naming the first field that does not."""
        by_name = {f.name: f for f in self.fields}
        for name in payload:
            if name not in by_name:
                allowed = ", ".join(sorted(by_name))
                raise Invalid(
                    f"{name} is not collected for {self.category} referrals (allowed: {allowed})",
                    field=f"payload.{name}",
                )
        for spec in self.fields:
            value = payload.get(spec.name)
            if value is None or value == "":
                if spec.required:
                    raise Invalid(f"{spec.name} is required", field=f"payload.{spec.name}")
                continue
            _check_value(spec, value)
        return {k: v for k, v in payload.items() if v is not None and v != ""}


def _check_value(spec: FieldSpec, value: Any) -> None:
    where = f"payload.{spec.name}"
    if spec.type in ("string", "text"):
        if not isinstance(value, str):
            raise Invalid(f"{spec.name} must be text", field=where)
        if spec.max_length is not None and len(value) > spec.max_length:
            raise Invalid(f"{spec.name} is longer than {spec.max_length} characters", field=where)
        if _CONTROL.search(value) or (spec.type == "string" and "\n" in value):
            raise Invalid(f"{spec.name} contains characters that are not allowed", field=where)
    elif spec.type == "date":
        if not (isinstance(value, str) and is_form_date(value)):
            raise Invalid(f"{spec.name} must be a date, YYYY-MM-DD", field=where)
    elif spec.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{spec.name} must be a whole number", field=where)
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            raise Invalid(f"{spec.name} must be between {spec.min} and {spec.max}", field=where)
    elif spec.type == "boolean":
        if not isinstance(value, bool):
            raise Invalid(f"{spec.name} must be true or false", field=where)
    elif value not in (spec.choices or []):
        raise Invalid(f"{spec.name} must be one of: {', '.join(spec.choices or [])}", field=where)


@functools.cache
def forms() -> dict[str, Form]:
    document = json.loads((DATA / "forms.json").read_text(encoding="utf-8"))
    fields = document["fields"]
    result = {}
    for category, lists in document["categories"].items():
        specs = [
            FieldSpec(name=name, required=required, **fields[name])
            for required, names in ((True, lists["required"]), (False, lists["optional"]))
            for name in names
        ]
        result[category] = Form(category=category, fields=specs)
    return result


def form_of(category: str) -> Form:
    try:
        return forms()[category]
    except KeyError:
        raise Invalid(f"no referral form for category {category!r}", field="category") from None


@functools.cache
def reasons() -> dict[str, dict[str, Labels]]:
    document = json.loads((DATA / "reasons.json").read_text(encoding="utf-8"))
    return {
        kind: {code: Labels(**labels) for code, labels in codes.items()}
        for kind, codes in document.items()
        if kind != "source"
    }


def check_reason(kind: str, code: str | None) -> None:
    """``code`` must be one of ``kind``'s reason codes (``decline``, ``close``, ...)."""
    if code is None or not kind:
        return
    known = reasons()[kind]
    if code not in known:
        raise Invalid(f"unknown reason {code!r} (one of: {', '.join(known)})", field="reason")
