"""The audit search's pickers: every action code offered once, under its group, in the
reader's language; the network log offers only what it holds; actors by their names."""

from __future__ import annotations

import pytest

from services.dashboard import audit_pages
from shared import i18n
from shared.contracts import audit_actions


@pytest.mark.parametrize("lang", ["fr", "ar", "en"])
def test_the_action_picker_offers_every_code_once_by_its_name(lang: str) -> None:
    gettext = i18n.translations(lang).gettext
    groups = audit_pages._action_choices("own", gettext)
    offered = [code for _, members in groups for code, _ in members]
    assert sorted(offered) == sorted(audit_actions.ACTIONS)
    for title, members in groups:
        assert title
        labels = [label for _, label in members]
        assert labels == sorted(labels)
        assert not any(label == code for code, label in members)


def test_the_network_log_offers_only_the_codes_it_holds() -> None:
    gettext = i18n.translations("fr").gettext
    offered = {
        c for _, members in audit_pages._action_choices("network", gettext) for c, _ in members
    }
    assert offered == audit_actions.NETWORK_ACTIONS
    assert "session.login" not in offered


def test_actors_are_named_and_an_asked_for_one_is_kept() -> None:
    ar = i18n.translations("ar").gettext
    groups = dict(audit_pages._actor_choices(["user:focal", "token:ab12"], "user:gone", ar))
    assert ("user:focal", "focal") in groups["الحسابات"]
    assert ("user:gone", "gone") in groups["الحسابات"]  # from the address, not lost
    assert ("system:referrals", "خدمة الإحالات") in groups["الخدمات"]
    assert audit_pages.actor_label("token:ab12", ar) == "نظام عضو ab12"


def test_the_form_sends_the_picked_outcome_and_nothing_typed_is_reinterpreted() -> None:
    query, bad = audit_pages.api_filters(
        {"action": "referral.sent", "outcome": "refused", "actor": "user:focal", "from": "nope"}
    )
    assert query == {"action": "referral.sent", "outcome": "refused", "actor": "user:focal"}
    assert set(bad) == {"from"}
