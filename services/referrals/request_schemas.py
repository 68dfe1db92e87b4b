"""The exact JSON Schemas the referral commands publish (``/asyncapi.json``), from the same
sources the checks use: each category's form (``data/forms.json``) for its payload, and for
each action the reason list its move names (``domain.MOVES``, ``data/reasons.json``).

The checks stay in ``forms`` and ``domain``, which name the field at fault in their own
words; these schemas tell a developer beforehand what those checks accept. Pure.
"""

from __future__ import annotations

from typing import Any

from services.referrals import domain, forms
from shared.contracts.referrals import RefusalReason, declare_step_reasons

NULL = {"type": "null"}


def field_schema(spec: forms.FieldSpec) -> dict[str, Any]:
    """What ``forms.Form.check`` accepts for one field."""
    schema: dict[str, Any]
    if spec.type in ("string", "text"):
        schema = {"type": "string", "minLength": 1}
        if spec.max_length is not None:
            schema["maxLength"] = spec.max_length
        if spec.type == "string":
            schema["pattern"] = r"^[^\n\r]*$"  # one line
    elif spec.type == "date":
        schema = {"type": "string", "format": "date"}
    elif spec.type == "integer":
        schema = {"type": "integer"}
        if spec.min is not None:
            schema["minimum"] = spec.min
        if spec.max is not None:
            schema["maximum"] = spec.max
    elif spec.type == "boolean":
        schema = {"type": "boolean"}
    else:
        schema = {"type": "string", "enum": list(spec.choices or [])}
    schema["title"] = spec.label.en
    if not spec.required:  # left out, null or "" all mean "not given"
        return {"anyOf": [schema, NULL, {"const": ""}], "title": spec.label.en}
    return schema


def payload_schema(form: forms.Form) -> dict[str, Any]:
    """A category's payload: its form's fields and nothing else."""
    return {
        "type": "object",
        "title": f"{form.category} payload",
        "properties": {spec.name: field_schema(spec) for spec in form.fields},
        "required": [spec.name for spec in form.fields if spec.required],
        "additionalProperties": False,
    }


def add_payload_forms(schema: dict[str, Any]) -> None:
    """A new referral's schema: its category one of the forms', its payload that form's."""
    every = forms.forms()
    schema["properties"]["category"]["enum"] = list(every)
    schema["properties"]["payload"]["description"] = "the fields of the category's form"
    schema["allOf"] = [
        {
            "if": {"properties": {"category": {"const": category}}, "required": ["category"]},
            "then": {"properties": {"payload": payload_schema(form)}},
        }
        for category, form in every.items()
    ]


def reason_codes() -> list[str]:
    """Every reason or outcome code some step takes."""
    return list(dict.fromkeys(code for codes in forms.reasons().values() for code in codes))


declare_step_reasons(reason_codes())  # for relais.referral.transitioned.v1's documentation


def add_reason_rules(schema: dict[str, Any]) -> None:
    """A step's schema: the reason codes it may take, and whether it needs one, per action."""
    reasons = forms.reasons()
    schema["properties"]["reason"] = {
        "anyOf": [{"type": "string", "enum": reason_codes()}, NULL],
        "default": None,
        "description": "a reason or outcome code: which ones depends on the action",
    }
    rules = []
    for action, move in domain.MOVES.items():
        then: dict[str, Any]
        if not move.reason:
            then = {"properties": {"reason": NULL}}
        else:
            codes = {"type": "string", "enum": list(reasons[move.reason])}
            then = {
                "properties": {
                    "reason": codes if move.reason_required else {"anyOf": [codes, NULL]}
                }
            }
            if move.reason_required:
                then["required"] = ["reason"]
        condition = {"properties": {"action": {"const": action.value}}, "required": ["action"]}
        rules.append({"if": condition, "then": then})
    schema["allOf"] = rules


def add_history_reasons(schema: dict[str, Any]) -> None:
    """A history step's reason: a step's reason or outcome code, or why an envelope was
    refused; none for most steps."""
    codes = [*reason_codes(), *(r.value for r in RefusalReason)]
    schema["properties"]["reason"] = {
        "anyOf": [{"type": "string", "enum": list(dict.fromkeys(codes))}, NULL],
        "description": "the step's reason or outcome code (GET /api/v1/referrals/reasons "
        "labels them), or why the recipient's node refused the envelope",
    }


def add_refusal_reasons(schema: dict[str, Any]) -> None:
    """Why the recipient's node refused an envelope, if it did."""
    schema["properties"]["refused_reason"] = {
        "anyOf": [{"type": "string", "enum": [r.value for r in RefusalReason]}, NULL],
        "description": "why the recipient's node refused it",
    }
