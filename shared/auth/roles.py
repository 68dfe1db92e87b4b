"""Who may act: the staff roles of DESIGN §7 and the principal a request is made by."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    """What a staff member, or a member system acting for its organisation, may do."""

    CASEWORKER = "caseworker"
    FOCAL_POINT = "focal_point"
    COORDINATOR = "coordinator"  # secretariat: network view and membership, no case content
    AUDITOR = "auditor"  # reads the audit logs and the network's figures; acts on nothing
    ADMIN = "admin"  # accounts and tokens of the node, not case content


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request.

    ``subject`` is the username of a staff member, or ``token:<id>`` for a member system;
    ``org`` is the node's organisation for staff, the token's organisation for a system.
    """

    subject: str
    kind: Literal["user", "system"]
    org: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        """Whether the caller holds at least one of ``roles`` (never true for no role at all)."""
        return not self.roles.isdisjoint(roles)


# The network's figures are aggregate, their small counts suppressed, and carry no case
# content: the secretariat uses them, the auditor checks what it says with them, and the
# hub's administrator sees them on the page it keeps members' credentials from. The audit
# API and the network page both admit exactly these roles.
NETWORK_FIGURE_READERS = frozenset({Role.COORDINATOR, Role.AUDITOR, Role.ADMIN})
