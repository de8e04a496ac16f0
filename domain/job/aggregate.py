"""The Job aggregate: commands decide (checking the transition table), ``apply`` assigns.

Commands take the time as an argument and never read a clock; ``apply`` never raises,
so any stored history replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import BaseAggregate

from domain.errors import (
    IllegalTransition,
    InvalidLease,
    LeaseNotExpired,
    NotDue,
    RequeueRefused,
    StaleEpoch,
    UnknownPhase,
)
from domain.job import events as e
from domain.job.apply import APPLY
from domain.job.snapshot import JobSnapshot
from domain.job.spec import Artifact, Dependency, ErrorInfo, JobSpec, RunInsights
from domain.job.state_values import Lease, Run
from domain.job.states import LEASED, JobState
from domain.job.table import JOB_TRANSITIONS
from domain.retry import retry_delay

S = JobState


@dataclass(frozen=True)
class RenewOutcome:
    expires_at: datetime | None
    cancel_requested: bool


class Job(BaseAggregate[UUID]):
    """A unit of work, its lease, its attempts and its outcome."""

    def __init__(self) -> None:
        # A shell: JobSubmitted.apply fills it in (the library calls this first).
        self.tenant = ""
        self.spec = JobSpec()
        self.content_hash: str | None = None
        self.deps: tuple[Dependency, ...] = ()
        self.state = S.QUEUED
        self.epoch = 0
        self.attempt = 0
        self.attempt_base = 0
        self.lease: Lease | None = None
        self.phase: str | None = None
        self.checkpoint: Any = None
        self.result: Any = None
        self.error: ErrorInfo | None = None
        self.available_at: datetime | None = None
        self.not_before: datetime | None = None
        self.runs: tuple[Run, ...] = ()
        self.superseded_by: UUID | None = None
        self.supersedes: UUID | None = None
        self.cancelled_epoch: int | None = None
        self.reason: str | None = None
        self.last_refusal: tuple[int, str] | None = None

    # ----------------------------------------------------------------- creation

    @classmethod
    def submit(
        cls,
        *,
        job_id: UUID,
        tenant: str,
        spec: JobSpec,
        deps: tuple[Dependency, ...],
        deps_met: bool,
        now: datetime,
        supersedes: UUID | None = None,
    ) -> Job:
        if not deps_met:
            state, available_at = S.BLOCKED, None
        elif spec.run_at is not None and spec.run_at > now:
            state, available_at = S.SCHEDULED, spec.run_at
        else:
            state, available_at = S.QUEUED, now
        JOB_TRANSITIONS.check(e.JobSubmitted, None, state)
        return cls._create(
            e.JobSubmitted,
            id=job_id,
            timestamp=now,
            tenant=tenant,
            spec=spec,
            # Only an idempotency key ever compares contents; hashing costs ~20 us a job.
            content_hash=None if spec.idempotency_key is None else spec.content_hash(),
            deps=deps,
            state=state,
            available_at=available_at,
            supersedes=supersedes,
        )

    # ------------------------------------------------------- queue and readiness

    def supersede(self, by_job_id: UUID, now: datetime) -> None:
        self._trigger(e.JobSuperseded, now, by_job_id=by_job_id)

    def replace_dependency(self, old: UUID, new: UUID, now: datetime) -> None:
        if any(d.job_id == old for d in self.deps):
            self._trigger(e.DependencyReplaced, now, old_job_id=old, new_job_id=new)

    def block(self, waiting_on: tuple[UUID, ...], now: datetime) -> None:
        self._trigger(e.JobBlocked, now, waiting_on=waiting_on)

    def unblock(self, now: datetime) -> None:
        """Dependencies are met: run now, or once ``run_at``/retry time arrives."""
        if self.not_before is not None and self.not_before > now:
            self._trigger(e.JobScheduled, now, available_at=self.not_before)
        else:
            self._trigger(e.JobReady, now, reason="dependencies_met")

    def make_ready(self, now: datetime) -> None:
        """A scheduled or failed job whose time has come becomes claimable."""
        if self.state is S.BLOCKED:
            # JobReady also leaves ``blocked``, but only through unblock(): dependencies, not time.
            raise IllegalTransition(
                aggregate="Job", event="JobReady", state=str(self.state), allowed_from=["failed", "scheduled"]
            )
        JOB_TRANSITIONS.check(e.JobReady, self.state)
        if self.available_at is not None and self.available_at > now:
            raise NotDue(self.id, self.available_at.isoformat())
        reason = "retry_due" if self.state is S.FAILED else "run_at_reached"
        self._trigger(e.JobReady, now, reason=reason)

    # ------------------------------------------------------------------- leases

    def grant_lease(self, factory_id: str, lease_seconds: float, now: datetime) -> None:
        _check_lease(lease_seconds)
        self._trigger(
            e.LeaseGranted,
            now,
            factory_id=factory_id,
            epoch=self.epoch + 1,
            attempt=self.attempt + 1,
            expires_at=now + timedelta(seconds=lease_seconds),
        )

    def renew_lease(self, epoch: int, lease_seconds: float | None, now: datetime) -> RenewOutcome:
        if self.state is S.CANCELLED and self.cancelled_epoch == epoch:
            # The holder learns of the cancel on its next renewal (no event: nothing changed).
            return RenewOutcome(expires_at=None, cancel_requested=True)
        self._fence(epoch, "renew", now)
        seconds = self.spec.lease_seconds if lease_seconds is None else lease_seconds
        _check_lease(seconds)
        expires_at = now + timedelta(seconds=seconds)
        self._trigger(e.LeaseRenewed, now, epoch=epoch, expires_at=expires_at)
        return RenewOutcome(expires_at=expires_at, cancel_requested=False)

    def release_lease(self, epoch: int, reason: str, now: datetime) -> None:
        self._fence(epoch, "release", now)
        self._trigger(e.LeaseReleased, now, epoch=epoch, reason=reason)

    def expire_lease(self, reason: str, now: datetime) -> None:
        """The reaper's command: the holder is gone (timeout or its factory is down)."""
        JOB_TRANSITIONS.check(e.LeaseExpired, self.state)
        lease = self._held_lease()
        if reason == "lease_timeout" and lease.expires_at > now:
            raise LeaseNotExpired(self.id, lease.expires_at.isoformat())
        self._trigger(
            e.LeaseExpired,
            now,
            epoch=lease.epoch,
            new_epoch=self.epoch + 1,
            expired_at=lease.expires_at,
            last_renewed_at=lease.last_renewed_at,
            reason=reason,
        )
        if self.attempts_left <= 0:
            self._dead_letter("attempts_exhausted", f"lease expired ({reason}) on the last attempt", now)
        elif self.budget_exhausted(now):
            self._dead_letter("budget_exhausted", "budget spent when the lease expired", now)

    # ------------------------------------------------------- worker reports

    def start(self, epoch: int, now: datetime) -> None:
        self._fence(epoch, "start", now)
        if self.state is S.ASSIGNED:
            self._trigger(e.JobStarted, now, epoch=epoch)

    def report_phase(self, epoch: int, phase: str, now: datetime) -> None:
        self._fence(epoch, "phase", now)
        if self.spec.phases and phase not in self.spec.phases:
            raise UnknownPhase(self.id, phase, list(self.spec.phases))
        self._trigger(e.PhaseReported, now, epoch=epoch, phase=phase)

    def save_checkpoint(self, epoch: int, checkpoint: Any, now: datetime) -> None:
        self._fence(epoch, "checkpoint", now)
        self._trigger(e.Checkpointed, now, epoch=epoch, checkpoint=checkpoint)

    def report_insights(self, epoch: int, insights: RunInsights, now: datetime) -> None:
        self._fence(epoch, "insights", now)
        self._trigger(e.InsightsReported, now, epoch=epoch, insights=insights)

    def record_artifact(self, epoch: int, artifact: Artifact, now: datetime) -> None:
        self._fence(epoch, "artifact", now)
        self._trigger(e.ArtifactRecorded, now, epoch=epoch, artifact=artifact)

    def succeed(self, epoch: int, result: Any, insights: RunInsights | None, now: datetime) -> None:
        self._fence(epoch, "succeed", now)
        self._trigger(e.JobSucceeded, now, epoch=epoch, result=result, insights=insights)

    def fail(
        self,
        epoch: int,
        error: ErrorInfo,
        insights: RunInsights | None,
        now: datetime,
        jitter_sample: float,
    ) -> None:
        """Record a failed attempt; retry after backoff, or dead-letter with the reason."""
        self._fence(epoch, "fail", now)
        allowed = self.spec.retry.retry_on
        retryable = error.retryable and (allowed is None or error.kind in allowed)
        used = self.attempts_used
        spent = self.budget_exhausted(now, extra=insights)
        if retryable and used < self.spec.retry.max_attempts and not spent:
            delay = retry_delay(self.spec.retry, used, jitter_sample)
            retry_at: datetime | None = now + timedelta(seconds=delay)
        else:
            retry_at = None
        self._trigger(e.AttemptFailed, now, epoch=epoch, error=error, retry_at=retry_at, insights=insights)
        if retry_at is None:
            if not retryable:
                self._dead_letter("non_retryable", f"{error.kind}: {error.message}", now)
            elif spent:
                self._dead_letter("budget_exhausted", f"budget spent; last error {error.kind}", now)
            else:
                self._dead_letter("attempts_exhausted", f"{used} attempt(s); last error {error.kind}", now)

    # --------------------------------------------------------------- operator

    def cancel(self, reason: str, by: str, now: datetime) -> None:
        self._trigger(e.JobCancelled, now, reason=reason, by=by)

    def dead_letter_for_dependency(self, dependency_id: UUID, dep_state: str, now: datetime) -> None:
        self._dead_letter(
            "dependency_failed", f"dependency {dependency_id} is {dep_state}", now, dependency_id
        )

    def requeue(self, by: str, now: datetime, failed_dependency: UUID | None = None) -> None:
        JOB_TRANSITIONS.check(e.JobRequeued, self.state)
        if failed_dependency is not None:
            raise RequeueRefused(self.id, f"dependency {failed_dependency} has failed; requeue it first")
        self._trigger(e.JobRequeued, now, by=by, attempt_base=self.attempt)

    # ---------------------------------------------------------------- queries

    @property
    def attempts_used(self) -> int:
        return self.attempt - self.attempt_base

    @property
    def attempts_left(self) -> int:
        return self.spec.retry.max_attempts - self.attempts_used

    def holds(self, epoch: int) -> bool:
        return self.lease is not None and self.lease.epoch == epoch

    def budget_exhausted(self, now: datetime, extra: RunInsights | None = None) -> bool:
        budget = self.spec.budget
        if budget is None:
            return False
        runs = self.runs[self.attempt_base :] if self.attempt_base else self.runs
        # ``extra`` is the open run's final usage: it replaces that run's interim insights
        # (as ``_end_run`` will), so they must not be counted as well.
        replaced = runs[-1] if extra is not None and runs and runs[-1].outcome is None else None
        insights = [r.insights for r in runs if r.insights is not None and r is not replaced]
        if extra is not None:
            insights.append(extra)
        cost = sum(i.cost_usd for i in insights)
        tokens = sum(i.tokens_in + i.tokens_out for i in insights)
        wall = sum(r.seconds(now) for r in runs)
        return (
            (budget.usd is not None and cost >= budget.usd)
            or (budget.tokens is not None and tokens >= budget.tokens)
            or (budget.wall_seconds is not None and wall >= budget.wall_seconds)
        )

    # ---------------------------------------------------------------- helpers

    def _fence(self, epoch: int, command: str, now: datetime) -> None:
        """Refuse, and record the refusal of, a write under a lease this job no longer has.

        A refusal identical to the one just recorded (same epoch, same command, nothing in
        between) is refused again but not recorded again: a zombie retrying its write
        cannot grow the job's history without bound.
        """
        if self.holds(epoch) and self.state in LEASED:
            return
        if self.last_refusal != (epoch, command):
            self._trigger(
                e.StaleWriteRejected,
                now,
                presented_epoch=epoch,
                current_epoch=self.epoch,
                command=command,
            )
        raise StaleEpoch(
            job_id=self.id,
            presented=epoch,
            current=self.epoch,
            state=str(self.state),
            command=command,
        )

    def _held_lease(self) -> Lease:
        assert self.lease is not None, "leased states always carry a lease"
        return self.lease

    def _dead_letter(
        self, reason: str, detail: str, now: datetime, dependency_id: UUID | None = None
    ) -> None:
        self._trigger(e.JobDeadLettered, now, reason=reason, detail=detail, dependency_id=dependency_id)

    def _trigger(self, event_class: type[e.JobEvent], now: datetime, **fields: Any) -> None:
        JOB_TRANSITIONS.check(event_class, self.state)
        self.trigger_event(event_class, timestamp=now, **fields)

    # ------------------------------------------------------------------ apply

    def apply(self, event: e.JobEvent) -> None:
        """Assign the event's consequences. Never raises, never decides."""
        row = JOB_TRANSITIONS.rows[type(event)]
        chosen = event.state if isinstance(event, e.JobSubmitted) else None
        self.state = row.target_for(self.state, chosen) or self.state
        if not isinstance(event, e.StaleWriteRejected):
            self.last_refusal = None
        APPLY[type(event)](self, event)

    # -------------------------------------------------------------- snapshots

    def snapshot_fields(self) -> dict[str, Any]:
        """The state a ``JobSnapshot`` holds, as a dict of already-typed values."""
        fields = {name: getattr(self, name) for name in _SNAPSHOT_STATE}
        fields["created_on"] = self.created_on
        fields["modified_on"] = self.modified_on
        return fields

    def to_snapshot(self) -> JobSnapshot:
        # model_construct: every value is already typed by the events that set it.
        return JobSnapshot.model_construct(**self.snapshot_fields())

    @classmethod
    def restore(cls, job_id: UUID, version: int, spec: JobSpec, snapshot: JobSnapshot) -> Job:
        """Rebuild from a snapshot (the job view row), without replaying events."""
        job = cls.__new__(cls)
        job.__base_init__(originator_id=job_id, originator_version=version, timestamp=snapshot.created_on)
        job.modified_on = snapshot.modified_on
        job.__init__()  # type: ignore[misc]
        job.spec = spec
        for name in _SNAPSHOT_STATE:
            setattr(job, name, getattr(snapshot, name))
        return job


MAX_LEASE_SECONDS = 86_400


def _check_lease(seconds: float) -> None:
    if not 0 < seconds <= MAX_LEASE_SECONDS:  # also refuses NaN
        raise InvalidLease(seconds)


_SNAPSHOT_STATE = tuple(n for n in JobSnapshot.model_fields if n not in ("created_on", "modified_on"))
