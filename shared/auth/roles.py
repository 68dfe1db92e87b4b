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
    AUDITOR = "auditor"
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
