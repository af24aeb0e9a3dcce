"""Who may see what in the internal dashboard (contract section 9's rights table).

Each role has every right of the roles below it: ``viewer`` sees aggregates, ``analyst``
adds the redacted comments and exports, ``supervisor`` the work queues, ``admin`` the
accounts and the audit log.
"""

from __future__ import annotations

import enum

ALL_AGENCIES = "*"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    ANALYST = "analyst"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


class Right(enum.StrEnum):
    OVERVIEW = "overview"
    COMMENTS = "comments"
    EXPORT = "export"
    QUEUES = "queues"
    USERS = "users"
    AUDIT = "audit"


LOWEST_ROLE: dict[Right, Role] = {
    Right.OVERVIEW: Role.VIEWER,
    Right.COMMENTS: Role.ANALYST,
    Right.EXPORT: Role.ANALYST,
    Right.QUEUES: Role.SUPERVISOR,
    Right.USERS: Role.ADMIN,
    Right.AUDIT: Role.ADMIN,
}


def allowed(role: Role, right: Right) -> bool:
    return role.at_least(LOWEST_ROLE[right])


def agencies_visible(account_agency: str) -> frozenset[str] | None:
    """The agencies an account's figures come from; ``None`` means every agency."""
    return None if account_agency == ALL_AGENCIES else frozenset({account_agency})
