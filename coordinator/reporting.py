"""What workers write under a lease: every write presents (job_id, epoch) and is fenced.

A stale epoch is refused with ``StaleEpoch`` and the refusal is recorded as a
``StaleWriteRejected`` event (committed before the error reaches the caller).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from coordinator.context import Context, Deferred
from coordinator.errors import NotFound
from coordinator.identity import Identity, Role
from coordinator.ports import UnitOfWork
from coordinator.propagation import propagate, settle
from coordinator.views import ItemError, ItemResult, RenewResult
from domain.errors import DomainError, StaleEpoch
from domain.job import Job
from domain.job.spec import Artifact, ErrorInfo, RunInsights

T = TypeVar("T")
MAX_COMPLETIONS = 1000


class Completion(BaseModel):
    """A finished attempt, as a worker reports it (batched by the worker runtime)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: UUID
    epoch: Annotated[int, Field(ge=0)]
    outcome: Literal["succeeded", "failed"]
    result: JsonValue = None
    error: ErrorInfo | None = None
    insights: RunInsights | None = None

    @model_validator(mode="after")
    def _error_iff_failed(self) -> Completion:
        if self.outcome == "failed" and self.error is None:
            raise ValueError("a failed completion needs an error {kind, message, retryable}")
        if self.outcome == "succeeded" and self.error is not None:
            raise ValueError("a succeeded completion carries no error")
        return self


def load_visible(uow: UnitOfWork, identity: Identity, job_id: UUID) -> Job:
    """Lock a job the identity may see; another tenant's job looks missing."""
    job = uow.lock_jobs([job_id]).get(job_id)
    if job is None or not identity.sees(job.tenant):
        raise NotFound("job", job_id)
    return job


class Reporting:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def _fenced(self, identity: Identity, job_id: UUID, command: Callable[[Job, datetime], T]) -> T:
        identity.require(Role.WORKER, "report on a job")

        def work(uow: UnitOfWork) -> Any:
            now = self.ctx.clock.now()
            job = load_visible(uow, identity, job_id)
            uow.add(job)
            try:
                out = command(job, now)
            except StaleEpoch as refused:
                return Deferred(refused)  # commit the StaleWriteRejected event, then raise
            self._after_write(uow, job, now)
            return out

        return self.ctx.transact(work)

    def _after_write(self, uow: UnitOfWork, job: Job, now: datetime) -> None:
        settle(uow, job, now)
        propagate(uow, [job], now)

    # ------------------------------------------------------------------ leases

    def renew(
        self, identity: Identity, job_id: UUID, epoch: int, lease_seconds: float | None = None
    ) -> RenewResult:
        def renew(job: Job, now: datetime) -> RenewResult:
            out = job.renew_lease(epoch, lease_seconds, now)
            return RenewResult(lease_expires_at=out.expires_at, cancel_requested=out.cancel_requested)

        return self._fenced(identity, job_id, renew)

    def release(
        self, identity: Identity, job_id: UUID, epoch: int, reason: str = "released by worker"
    ) -> None:
        self._fenced(identity, job_id, lambda job, now: job.release_lease(epoch, reason, now))

    # ----------------------------------------------------------------- reports

    def start(self, identity: Identity, job_id: UUID, epoch: int) -> None:
        self._fenced(identity, job_id, lambda job, now: job.start(epoch, now))

    def report_phase(self, identity: Identity, job_id: UUID, epoch: int, phase: str) -> None:
        self._fenced(identity, job_id, lambda job, now: job.report_phase(epoch, phase, now))

    def checkpoint(self, identity: Identity, job_id: UUID, epoch: int, checkpoint: Any) -> None:
        self._fenced(identity, job_id, lambda job, now: job.save_checkpoint(epoch, checkpoint, now))

    def report_insights(self, identity: Identity, job_id: UUID, epoch: int, insights: RunInsights) -> None:
        self._fenced(identity, job_id, lambda job, now: job.report_insights(epoch, insights, now))

    def record_artifact(self, identity: Identity, job_id: UUID, epoch: int, artifact: Artifact) -> None:
        self._fenced(identity, job_id, lambda job, now: job.record_artifact(epoch, artifact, now))

    def succeed(
        self,
        identity: Identity,
        job_id: UUID,
        epoch: int,
        result: Any = None,
        insights: RunInsights | None = None,
    ) -> None:
        self._fenced(identity, job_id, lambda job, now: job.succeed(epoch, result, insights, now))

    def fail(
        self,
        identity: Identity,
        job_id: UUID,
        epoch: int,
        error: ErrorInfo,
        insights: RunInsights | None = None,
    ) -> None:
        jitter = self.ctx.random.sample()
        self._fenced(identity, job_id, lambda job, now: job.fail(epoch, error, insights, now, jitter))

    # ------------------------------------------------------------------ batches

    def complete(self, identity: Identity, completions: Sequence[Completion]) -> list[ItemResult]:
        """Many finished attempts in one transaction; each item succeeds or is refused
        on its own (stale ones are recorded and reported, the rest commit)."""
        identity.require(Role.WORKER, "complete jobs")
        if len(completions) > MAX_COMPLETIONS:
            raise ValueError(f"at most {MAX_COMPLETIONS} completions per batch")
        jitters = [self.ctx.random.sample() for _ in completions]
        return self.ctx.transact(lambda uow: self._complete(uow, identity, completions, jitters))

    def _complete(
        self, uow: UnitOfWork, identity: Identity, completions: Sequence[Completion], jitters: list[float]
    ) -> list[ItemResult]:
        now = self.ctx.clock.now()
        jobs = uow.lock_jobs(sorted({c.job_id for c in completions}))
        results = []
        done = []
        for index, (c, jitter) in enumerate(zip(completions, jitters, strict=True)):
            job = jobs.get(c.job_id)
            try:
                if job is None or not identity.sees(job.tenant):
                    raise NotFound("job", c.job_id)
                uow.add(job)
                if c.outcome == "succeeded":
                    job.succeed(c.epoch, c.result, c.insights, now)
                else:
                    assert c.error is not None
                    job.fail(c.epoch, c.error, c.insights, now, jitter)
            except DomainError as exc:
                results.append(
                    ItemResult(
                        index=index,
                        ok=False,
                        job_id=c.job_id,
                        error=ItemError(code=exc.code, message=exc.message, details=exc.to_dict()),
                    )
                )
                continue
            done.append(job)
            results.append(ItemResult(index=index, ok=True, job_id=c.job_id))
        propagate(uow, done, now)
        return results
