"""Domain errors: typed, carrying fields, each saying what the caller can do about it."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID


class DomainError(Exception):
    """Base of every domain refusal. ``code`` is stable; ``fields`` are machine-readable."""

    code: ClassVar[str] = "domain-error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **fields: Any):
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **_jsonable(self.fields)}


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, UUID):
            out[key] = str(value)
        elif isinstance(value, list | tuple):
            out[key] = [str(v) if isinstance(v, UUID) else v for v in value]
        else:
            out[key] = value
    return out


class IllegalTransition(DomainError):
    code = "illegal-transition"

    def __init__(
        self,
        *,
        aggregate: str,
        event: str,
        state: str | None,
        allowed_from: list[str],
        target: str | None = None,
    ):
        where = "before creation" if state is None else f"in state '{state}'"
        message = f"{aggregate}: {event} cannot happen {where}"
        if target is not None:
            message += f" with target '{target}'"
        if allowed_from:
            message += f"; it is allowed from: {', '.join(allowed_from)}"
        super().__init__(
            message,
            aggregate=aggregate,
            event=event,
            state=state,
            allowed_from=allowed_from,
            target=target,
        )


class StaleEpoch(DomainError):
    """A worker presented a lease epoch that no longer holds the job (fencing)."""

    code = "stale-epoch"

    def __init__(self, *, job_id: UUID, presented: int, current: int, state: str, command: str):
        super().__init__(
            f"job {job_id}: {command} with epoch {presented} refused; the current epoch is "
            f"{current} and the job is '{state}'. This worker no longer holds the lease: "
            "stop working on the job and do not retry the write.",
            job_id=job_id,
            presented_epoch=presented,
            current_epoch=current,
            state=state,
            command=command,
        )


class UnknownDependency(DomainError):
    code = "unknown-dependency"

    def __init__(self, ids: list[UUID]):
        shown = ", ".join(str(i) for i in ids)
        super().__init__(
            f"unknown dependency id(s): {shown}; submit the dependencies first (in the same "
            "tenant) and use the ids they were given",
            ids=ids,
        )


class DependencyFailed(DomainError):
    code = "dependency-failed"

    def __init__(self, dependency_id: UUID, state: str):
        super().__init__(
            f"dependency {dependency_id} is '{state}' and can never succeed; requeue it first "
            "or drop it from deps",
            dependency_id=dependency_id,
            state=state,
        )


class UnknownPhase(DomainError):
    code = "unknown-phase"

    def __init__(self, job_id: UUID, phase: str, phases: list[str]):
        declared = ", ".join(phases) if phases else "none"
        super().__init__(
            f"job {job_id} declares no phase '{phase}' (declared phases: {declared})",
            job_id=job_id,
            phase=phase,
            phases=phases,
        )


class DependencyCycle(DomainError):
    code = "dependency-cycle"

    def __init__(self, cycle: list[str]):
        super().__init__(
            "dependencies form a cycle: " + " -> ".join(cycle) + "; remove one of these edges",
            cycle=cycle,
        )


class IdempotencyConflict(DomainError):
    code = "idempotency-conflict"

    def __init__(self, *, key: str, job_id: UUID, state: str):
        super().__init__(
            f"idempotency key '{key}' belongs to job {job_id}, which is '{state}' and can no "
            "longer be superseded; use a new key to submit different content",
            key=key,
            job_id=job_id,
            state=state,
        )


class RequeueRefused(DomainError):
    code = "requeue-refused"

    def __init__(self, job_id: UUID, reason: str):
        super().__init__(f"job {job_id} cannot be requeued: {reason}", job_id=job_id, reason=reason)


class ProfileConflict(DomainError):
    code = "profile-conflict"

    def __init__(self, name: str, version: int):
        super().__init__(
            f"profile {name} v{version} already exists with different content; profiles are "
            "immutable, register a new version",
            name=name,
            version=version,
        )


class LeaseNotExpired(DomainError):
    """The reaper raced a renewal: the lease it meant to expire is valid again."""

    code = "lease-not-expired"

    def __init__(self, job_id: UUID, expires_at: str):
        super().__init__(
            f"job {job_id}: lease is valid until {expires_at}; nothing to reap",
            job_id=job_id,
            expires_at=expires_at,
        )


class NotDue(DomainError):
    code = "not-due"

    def __init__(self, job_id: UUID, available_at: str):
        super().__init__(
            f"job {job_id} is not due before {available_at}", job_id=job_id, available_at=available_at
        )


class InvalidLease(DomainError):
    code = "invalid-lease"

    def __init__(self, seconds: float):
        super().__init__(
            f"a lease of {seconds} seconds is not allowed: use more than 0 and at most 86400",
            lease_seconds=seconds,
        )
