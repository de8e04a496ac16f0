"""Who is asking: an explicit argument of every service method, never ambient state.

HTTP (bearer tokens), the CLI and MCP all build an ``Identity`` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from coordinator.errors import Forbidden, TenantRequired


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
