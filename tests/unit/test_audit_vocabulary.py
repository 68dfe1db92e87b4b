"""The audit logs' action codes: every code the code records is declared in
``shared.contracts.audit_actions`` (found by reading the source, as a reviewer would), every
declared code is recorded somewhere, and each has its words in French, Arabic and English."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import pytest

from services.directory.domain import Membership
from services.referrals.domain import Deadline
from shared import i18n
from shared.contracts import audit_actions
from shared.contracts.audit import Outcome
from shared.contracts.referrals import Status

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("services", "shared", "deploy")
# The functions that record an audit entry, or hand an action code on to one that does.
RECORDERS = {"record", "record_own", "audit", "audit_entry", "_audit", "_log", "_publish", "Draft"}
ENUMS: dict[str, type[StrEnum]] = {
    "Status": Status,
    "Membership": Membership,
    "Deadline": Deadline,
}
CODE = r"^[a-z_]+\.[a-z_]+$"


class Unreadable(Exception):
    """A recorded action the scan cannot work out: declare it plainly or teach the scan."""


def _name_of(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _enum_values(annotation: ast.expr | None) -> set[str] | None:
    name = _name_of(annotation) if annotation is not None else ""
    enum = ENUMS.get(name)
    return None if enum is None else {member.value for member in enum}


def _known(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, set[str] | None]:
    """What each name in ``function`` may hold: string literals assigned to it, its default,
    or the values of the enum it is annotated with; ``None`` for a parameter passed through."""
    env: dict[str, set[str] | None] = {}
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True))
    pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    for arg, default in pairs:
        values = _enum_values(arg.annotation)
        if values is None and isinstance(default, ast.Constant) and isinstance(default.value, str):
            values = {default.value}
        env[arg.arg] = values
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    env.setdefault(target.id, set())
                    found = env[target.id]
                    if found is not None:
                        found.add(node.value.value)
    return env


def _values(expr: ast.expr, env: dict[str, set[str] | None]) -> set[str] | None:
    """The strings ``expr`` may evaluate to; ``None`` when it only passes a value on."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        body, orelse = _values(expr.body, env), _values(expr.orelse, env)
        return None if body is None or orelse is None else body | orelse
    if isinstance(expr, ast.Name):
        return env.get(expr.id)
    if isinstance(expr, ast.Attribute) and expr.attr == "value":
        owner = expr.value
        # Status.EXPIRED.value
        if isinstance(owner, ast.Attribute) and _name_of(owner.value) in ENUMS:
            return {ENUMS[_name_of(owner.value)][owner.attr].value}
        # step.status.value, alarm.deadline.value, status.value
        kind = _name_of(owner).capitalize()
        if kind in ENUMS:
            return {member.value for member in ENUMS[kind]}
        raise Unreadable(ast.unparse(expr))
    if isinstance(expr, ast.JoinedStr):
        combined = {""}
        for part in expr.values:
            if isinstance(part, ast.FormattedValue):
                inner = _values(part.value, env)
                if inner is None:
                    return None  # e.g. f"referral.{action}": the callers are scanned
            else:
                inner = _values(part, env)
            assert inner is not None
            combined = {left + right for left in combined for right in inner}
        return combined
    if isinstance(expr, ast.Attribute):
        return None  # record.action: a code already recorded elsewhere, passed on
    raise Unreadable(ast.unparse(expr))


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def recorded_actions() -> dict[str, str]:
    """Every action code recorded in the source: code → where."""
    found: dict[str, str] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT)
            tree = ast.parse(path.read_text(), str(relative))
            referrals = relative.parts[:2] == ("services", "referrals")
            for function in _functions(tree):
                env = _known(function)
                for call in ast.walk(function):
                    if not isinstance(call, ast.Call):
                        continue
                    name = _name_of(call.func)
                    keyword = [k.value for k in call.keywords if k.arg == "action"]
                    if name not in RECORDERS and not keyword:
                        continue
                    candidates = keyword or call.args
                    for arg in candidates:
                        try:
                            values = _values(arg, env)
                        except Unreadable:
                            if keyword:
                                raise
                            continue  # not the action argument (a pool, an actor, ...)
                        for value in values or ():
                            code = value
                            # The referrals service's audit() and audit_entry() take the verb
                            # after "referral."
                            if referrals and name in ("audit", "audit_entry") and "." not in value:
                                code = f"referral.{value}"
                            if _is_code(code):
                                found.setdefault(code, f"{relative}:{call.lineno}")
    return found


def _is_code(value: str) -> bool:
    import re

    return re.fullmatch(CODE, value) is not None


def test_the_scan_finds_the_actions_recorded_in_every_way() -> None:
    found = recorded_actions()
    # One of each way a code reaches the log: a literal, a referral verb, an enum member,
    # an f-string over an enum, a late step, a default parameter, a record drafted directly.
    for code in (
        "session.login",
        "referral.payload_read",
        "referral.expired",
        "referral.declined",
        "referral.declined_late",
        "referral.answer_breached",
        "membership.admit",
        "organisation.published",
        "audit.pruned",
        "node.restored",
        "referral.offered",
    ):
        assert code in found, code


def test_every_recorded_action_is_declared() -> None:
    missing = {
        code: where
        for code, where in recorded_actions().items()
        if code not in audit_actions.ACTIONS
    }
    assert not missing, f"declare these in shared/contracts/audit_actions.py: {missing}"


def test_every_declared_action_is_recorded_somewhere() -> None:
    found = recorded_actions()
    unused = set(audit_actions.OTHER_LABELS) - set(found)
    assert not unused, f"no code records these any more: {sorted(unused)}"


def test_the_network_codes_are_declared_actions() -> None:
    assert audit_actions.NETWORK_ACTIONS <= audit_actions.ACTIONS


@pytest.mark.parametrize("lang", ["fr", "ar", "en"])
def test_every_action_and_outcome_has_its_words_in_each_language(lang: str) -> None:
    gettext = i18n.translations(lang).gettext
    labels = {code: audit_actions.action_label(code, gettext) for code in audit_actions.ACTIONS}
    for code, label in labels.items():
        assert label and label != code, code
        assert "%(" not in label, code
    # Two actions never read the same: the reader could not tell them apart in the picker.
    assert len(set(labels.values())) == len(labels)
    outcomes = [audit_actions.outcome_label(o.value, gettext) for o in Outcome]
    assert len(set(outcomes)) == len(outcomes)
    if lang != "en":
        english = i18n.translations("en").gettext
        assert audit_actions.action_label("session.login", gettext) != (
            audit_actions.action_label("session.login", english)
        )


def test_the_words_read_as_a_person_would() -> None:
    fr = i18n.translations("fr").gettext
    ar = i18n.translations("ar").gettext
    assert audit_actions.action_label("referral.accepted", fr) == "Orientation acceptée"
    assert audit_actions.action_label("referral.accepted_late", fr) == (
        "Orientation acceptée (arrivée en retard)"
    )
    assert audit_actions.action_label("session.login", ar) == "تسجيل الدخول"
    assert audit_actions.outcome_label("refused", ar) == "مرفوض"
    # An unknown code (an older record) is shown as it is, not hidden.
    assert audit_actions.action_label("thing.done", fr) == "thing.done"
