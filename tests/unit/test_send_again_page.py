"""The page's side of sending again: when it is offered, and how an earlier payload becomes
the wizard's form values (only on the explicit "carry over" action)."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from services.dashboard import send_again, wizard


@pytest.mark.parametrize("status", ["declined", "expired"])
def test_offered_on_a_sent_referral_that_ended_without_the_service(status: str) -> None:
    assert send_again.may_send_again({"box": "outbox", "status": status})


def test_offered_on_a_referral_the_recipients_node_refused() -> None:
    refused = {"box": "outbox", "status": "sent", "refused_reason": "unknown_key"}
    assert send_again.may_send_again(refused)


@pytest.mark.parametrize(
    "status", ["sent", "received", "accepted", "in_progress", "completed", "withdrawn"]
)
def test_not_offered_while_open_or_after_the_service(status: str) -> None:
    assert not send_again.may_send_again({"box": "outbox", "status": status})


@pytest.mark.parametrize("status", ["declined", "expired"])
def test_never_offered_to_the_recipient(status: str) -> None:
    assert not send_again.may_send_again({"box": "inbox", "status": status, "refused_reason": "x"})


def test_a_carried_payload_fills_the_wizards_fields_as_typed() -> None:
    earlier = {
        "referral_id": "x",
        "payload": {"full_name": "Awa D.", "age": 27, "pregnant": True, "has_papers": False},
        "notes": [{"note": "never carried"}],
    }
    carried = send_again.carried_payload(earlier)
    assert carried == {"full_name": "Awa D.", "age": "27", "pregnant": "yes", "has_papers": ""}
    # The wizard reads them back as it reads its own form.
    draft = wizard.Draft(payload=carried)
    assert draft.hidden(set()) == [
        ("payload.full_name", "Awa D."),
        ("payload.age", "27"),
        ("payload.pregnant", "yes"),
    ]


def test_follows_is_carried_through_the_wizards_steps() -> None:
    earlier = "0190c2f0-0000-7000-8000-000000000001"
    draft = wizard.Draft.of(FormData([("follows", earlier), ("key", "k"), ("step", "details")]))
    assert ("follows", earlier) in draft.hidden({"key"})
