"""The secretariat's own organisation runs the hub: it cannot be put out of the network."""

import pytest

from services.directory import domain
from shared.errors import Conflict
from tests.unit.test_directory_domain import record


@pytest.mark.parametrize("action", [domain.Membership.SUSPEND, domain.Membership.LEAVE])
def test_the_secretariat_cannot_suspend_or_let_go_of_itself(action: domain.Membership) -> None:
    hub = record(1)
    with pytest.raises(Conflict) as refused:
        domain.change_membership(hub, action, "test", secretariat=hub.org_id)
    assert refused.value.status == 409
    assert "secretariat" in str(refused.value)


def test_another_member_can_still_be_suspended() -> None:
    member = record(1)
    suspended = domain.change_membership(
        member, domain.Membership.SUSPEND, "no answer", secretariat="secretariat_hub"
    )
    assert suspended.status == "suspended"
