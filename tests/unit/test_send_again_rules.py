"""Which referrals a new one may follow (issue 14, "no dead ends"): only the sender's own, and
only once it ended without the service."""

from __future__ import annotations

import pytest

from services.referrals import domain
from services.referrals.domain import Side
from shared.contracts.referrals import Status
from shared.errors import Conflict, Invalid


@pytest.mark.parametrize("status", [Status.DECLINED, Status.EXPIRED])
def test_a_declined_or_expired_referral_may_be_sent_again(status: Status) -> None:
    domain.check_send_again(Side.SENDER, status, refused=False)


def test_a_referral_the_recipients_node_refused_may_be_sent_again() -> None:
    # A refused envelope leaves the referral "sent" at the sender: the refusal decides.
    domain.check_send_again(Side.SENDER, Status.SENT, refused=True)


@pytest.mark.parametrize(
    "status",
    [s for s in Status if s not in (Status.DECLINED, Status.EXPIRED)],
)
def test_a_referral_still_open_or_ended_otherwise_is_not_sent_again(status: Status) -> None:
    with pytest.raises(Conflict) as refused:
        domain.check_send_again(Side.SENDER, status, refused=False)
    assert refused.value.field == "follows"
    assert status.value in refused.value.detail
    assert refused.value.status == 409


@pytest.mark.parametrize("status", list(Status))
def test_a_received_referral_is_never_sent_again_by_its_recipient(status: Status) -> None:
    with pytest.raises(Invalid) as refused:
        domain.check_send_again(Side.RECIPIENT, status, refused=True)
    assert refused.value.field == "follows"
    assert refused.value.status == 422
