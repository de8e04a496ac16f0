"""Errors of the application layer. Adapters translate driver errors into these at one
choke point; ``retryable`` drives tenacity."""

from __future__ import annotations

import math
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


class AnalyticsOff(CoordinatorError):
    """This server does not follow the log into ClickHouse (started with --no-analytics)."""

    code = "analytics-off"

    def __init__(self) -> None:
        super().__init__(
            "analytics is off on this server (started with --no-analytics); ask a server "
            "that runs it, or query ClickHouse directly"
        )


class QuotaExceeded(CoordinatorError):
    """A submit that would take the tenant past one of its quotas; nothing was admitted.

    Not ``retryable`` in the tenacity sense (re-running the transaction at once gives the
    same answer): the client may try again after ``retry_after_seconds``.
    """

    code = "quota-exceeded"
    retryable = False

    def __init__(
        self,
        tenant: str,
        quota: str,
        limit: int,
        current: int,
        retry_after_seconds: float,
        *,
        requested: int | None = None,
    ):
        self.requested = requested
        super().__init__(
            _quota_message(
                tenant, quota, limit, current, retry_after=retry_after_seconds, requested=requested
            ),
            tenant=tenant,
            quota=quota,
            limit=limit,
            current=current,
            retry_after_seconds=retry_after_seconds,
        )


_QUOTA_USAGE = {
    "max_queued": "{current} job(s) waiting to run",
    "submits_per_minute": "{current} job(s) submitted in the last 60 s",
    "max_in_flight": "{current} job(s) leased",
}


def _quota_message(
    tenant: str, quota: str, limit: int, current: int, *, retry_after: float, requested: int | None
) -> str:
    usage = _QUOTA_USAGE.get(quota, "{current} in use").format(current=current)
    adds = "" if requested is None else f", and this request adds {requested}"
    raise_it = f"ask an admin to raise it with PUT /v1/tenants/{tenant}/quotas"
    if requested is not None and requested > limit:
        advice = (
            "this request alone is over the limit: split it into requests of at most "
            f"{limit} job(s), or {raise_it}"
        )
    else:
        advice = f"retry in {max(1, math.ceil(retry_after))} s, or {raise_it}"
    return (
        f"tenant {tenant} is over its {quota} quota (limit {limit}): {usage}{adds}. "
        f"Nothing was submitted; {advice}."
    )


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


class GuessMissed(Exception):
    """A unit of work that decided on what this process last read (a hand-over sent in
    one round trip, ``Claiming.offer_to``) found at commit that it had changed; nothing
    was written. The caller runs the unit of work again, reading before it decides.
    Never leaves the coordinator."""


class WouldRead(Exception):
    """A unit of work run where it may not wait for an answer (``LoopCommits``: an event
    loop's thread, sending only its commit) asked the store a question; nothing was
    sent. The caller runs the unit of work the ordinary way. Never leaves the caller."""
