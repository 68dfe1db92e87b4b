"""A message the other organisation's node refused is said on the referral page, in the
reader's language, with why; every refusal code the contract names has its words."""

from __future__ import annotations

from typing import Any

import pytest

from services.dashboard import conversation
from shared.contracts.referrals import MessageRefusal


def message(**overrides: Any) -> dict[str, Any]:
    return {
        "message_id": "0190b6a0-0000-7000-8000-000000000001",
        "by_org": "sanad",
        "by_role": "caseworker",
        "at": "2026-03-02T10:00:00+00:00",
        "text": "Rendez-vous jeudi",
        "mine": True,
        "erased": False,
        **overrides,
    }


def test_every_refusal_code_has_its_words() -> None:
    assert set(conversation.REFUSAL) == {r.value for r in MessageRefusal}


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("fr", "Non remis : sa signature n'a pas été vérifiée"),
        ("ar", "لم تُسلَّم: لم يتم التحقق من توقيعها"),
        ("en", "Not delivered: its signature did not verify"),
    ],
)
def test_a_refused_message_says_it_was_not_delivered_and_why(lang: str, said: str) -> None:
    shown = conversation.said(lang, message(refused_reason="bad_signature"), {})
    assert shown.not_delivered is not None
    assert shown.not_delivered.startswith(said)
    assert shown.text == "Rendez-vous jeudi"


def test_a_delivered_message_says_nothing_of_the_kind() -> None:
    assert conversation.said("fr", message(refused_reason=None), {}).not_delivered is None
    assert conversation.said("fr", message(), {}).not_delivered is None
