"""Who is asking: an explicit argument of every service method, never ambient state.

HTTP (bearer tokens), the CLI and MCP all build an ``Identity`` the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from coordinator.errors import Forbidden, InvalidRequest, TenantRequired

TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Role(StrEnum):
    ADMIN = "admin"
    SUBMITTER = "submitter"
    WORKER = "worker"
    READER = "reader"


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Identity:
    subject: str
    tenant: str | None
    """None: fleet-wide (an operator, or a worker serving every tenant)."""
    roles: frozenset[Role]

    def __post_init__(self) -> None:
        if self.tenant is not None and not TENANT.match(self.tenant):
            raise InvalidRequest(
                "identity",
                [
                    {
                        "loc": "tenant",
                        "msg": f"'{self.tenant}' is not a tenant name: use 1-63 of "
                        "a-z 0-9 _ - starting with a letter or digit",
                        "type": "pattern",
                    }
                ],
            )
        if not self.subject:
            raise InvalidRequest(
                "identity", [{"loc": "subject", "msg": "a subject is required", "type": "missing"}]
            )

    @classmethod
    def of(cls, subject: str, tenant: str | None, *roles: Role) -> Identity:
        return cls(subject, tenant, frozenset(roles or ALL_ROLES))

    def require(self, role: Role, action: str) -> None:
        if Role.ADMIN not in self.roles and role not in self.roles:
            raise Forbidden(action, str(role))

    def sees(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant

    def scope(self) -> tuple[str, ...] | None:
        return None if self.tenant is None else (self.tenant,)

    def write_tenant(self, action: str) -> str:
        if self.tenant is None:
            raise TenantRequired(action)
        return self.tenant
