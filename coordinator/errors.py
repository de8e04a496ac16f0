"""Errors of the application layer. Adapters translate driver errors into these at one
choke point; ``retryable`` drives tenacity."""

from __future__ import annotations

from typing import Any, ClassVar

from domain.errors import DomainError


class CoordinatorError(DomainError):
    code: ClassVar[str] = "coordinator-error"


class NotFound(CoordinatorError):
    """Also what another tenant's job looks like: indistinguishable from a missing one."""

    code = "not-found"

    def __init__(self, kind: str, ident: Any):
        super().__init__(f"{kind} {ident} not found", kind=kind, id=str(ident))


class Forbidden(CoordinatorError):
    code = "forbidden"

    def __init__(self, action: str, needs: str):
        super().__init__(f"{action} needs the '{needs}' role", action=action, needs=needs)


class TenantRequired(CoordinatorError):
    code = "tenant-required"

    def __init__(self, action: str):
        super().__init__(
            f"{action} needs a tenant: pass --tenant (or use a tenant-bound token)", action=action
        )


class FactoryDown(CoordinatorError):
    code = "factory-down"

    def __init__(self, name: str):
        super().__init__(
            f"factory {name} is marked down (its heartbeats stopped and its leases were "
            "reaped); send a heartbeat to rejoin before claiming",
            factory=name,
        )


class InvalidRequest(CoordinatorError):
    """Input that failed validation; ``errors`` lists each problem with its location."""

    code = "invalid-request"

    def __init__(self, what: str, errors: list[dict[str, Any]]):
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:10])
        super().__init__(f"invalid {what}: {detail}", errors=errors)


class Conflict(CoordinatorError):
    """A concurrent transaction changed what this one read; re-running is safe."""

    code = "conflict"
    retryable = True

    def __init__(self, detail: str):
        super().__init__(f"concurrent update, retry: {detail}", detail=detail)


class Unavailable(CoordinatorError):
    """The store cannot be reached or is busy; try again later."""

    code = "unavailable"
    retryable = True

    def __init__(self, detail: str):
        super().__init__(f"event store unavailable: {detail}", detail=detail)


def validation_errors(exc: Any) -> list[dict[str, Any]]:
    """pydantic's errors as plain, JSON-able dicts with dotted locations."""
    return [
        {
            "loc": ".".join(str(p) for p in err.get("loc", ())) or "(body)",
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
