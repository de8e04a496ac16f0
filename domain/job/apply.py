"""How each job event changes a job's state: assignments only, never a decision, never
an exception, so any stored history replays. ``APPLY`` maps every event class in the
transition table to its step (a test checks the two agree)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.job import events as e
from domain.job.spec import RunInsights
from domain.job.state_values import Lease, Run

if TYPE_CHECKING:
    from domain.job.aggregate import Job


def on_submitted(job: Job, ev: e.JobSubmitted) -> None:
    job.tenant = ev.tenant
    job.spec = ev.spec
    job.content_hash = ev.content_hash
    job.deps = ev.deps
    job.available_at = ev.available_at
    job.not_before = ev.spec.run_at
    job.supersedes = ev.supersedes


def on_superseded(job: Job, ev: e.JobSuperseded) -> None:
    job.superseded_by = ev.by_job_id
    job.available_at = None


def on_dependency_replaced(job: Job, ev: e.DependencyReplaced) -> None:
    job.deps = tuple(
        d.model_copy(update={"job_id": ev.new_job_id}) if d.job_id == ev.old_job_id else d for d in job.deps
    )


def on_blocked(job: Job, ev: e.JobBlocked) -> None:
    job.available_at = None


def on_scheduled(job: Job, ev: e.JobScheduled) -> None:
    job.available_at = ev.available_at


def on_ready(job: Job, ev: e.JobReady) -> None:
    job.available_at = ev.timestamp
    job.not_before = None


def on_lease_granted(job: Job, ev: e.LeaseGranted) -> None:
    job.epoch = ev.epoch
    job.attempt = ev.attempt
    job.lease = Lease(
        factory_id=ev.factory_id, epoch=ev.epoch, granted_at=ev.timestamp, expires_at=ev.expires_at
    )
    job.runs = (
        *job.runs,
        Run(attempt=ev.attempt, epoch=ev.epoch, factory_id=ev.factory_id, started_at=ev.timestamp),
    )
    job.available_at = None
    job.phase = None
    job.error = None


def on_lease_renewed(job: Job, ev: e.LeaseRenewed) -> None:
    if job.lease is not None:
        job.lease = job.lease.model_copy(
            update={"expires_at": ev.expires_at, "last_renewed_at": ev.timestamp}
        )


def end_run(
    job: Job, at: datetime, outcome: Any, error_kind: str | None = None, insights: RunInsights | None = None
) -> None:
    if job.runs and job.runs[-1].outcome is None:
        last = job.runs[-1].ended(at, outcome, error_kind).with_insights(insights)
        job.runs = (*job.runs[:-1], last)
    job.lease = None
    job.phase = None


def on_lease_released(job: Job, ev: e.LeaseReleased) -> None:
    end_run(job, ev.timestamp, "released")
    job.available_at = ev.timestamp


def on_lease_expired(job: Job, ev: e.LeaseExpired) -> None:
    end_run(job, ev.timestamp, "expired")
    job.epoch = ev.new_epoch
    job.available_at = ev.timestamp


def on_started(job: Job, ev: e.JobStarted) -> None:
    pass


def on_phase(job: Job, ev: e.PhaseReported) -> None:
    job.phase = ev.phase


def on_checkpoint(job: Job, ev: e.Checkpointed) -> None:
    job.checkpoint = ev.checkpoint


def on_insights(job: Job, ev: e.InsightsReported) -> None:
    if job.runs:
        job.runs = (*job.runs[:-1], job.runs[-1].with_insights(ev.insights))


def on_artifact(job: Job, ev: e.ArtifactRecorded) -> None:
    if job.runs:
        last = job.runs[-1]
        job.runs = (
            *job.runs[:-1],
            last.model_copy(update={"artifacts": (*last.artifacts, ev.artifact)}),
        )


def on_succeeded(job: Job, ev: e.JobSucceeded) -> None:
    end_run(job, ev.timestamp, "succeeded", insights=ev.insights)
    job.result = ev.result


def on_attempt_failed(job: Job, ev: e.AttemptFailed) -> None:
    end_run(job, ev.timestamp, "failed", ev.error.kind, ev.insights)
    job.error = ev.error
    job.available_at = ev.retry_at
    job.not_before = ev.retry_at


def on_dead_lettered(job: Job, ev: e.JobDeadLettered) -> None:
    job.available_at = None
    job.reason = f"{ev.reason}: {ev.detail}"


def on_cancelled(job: Job, ev: e.JobCancelled) -> None:
    if job.lease is not None:
        job.cancelled_epoch = job.lease.epoch
    end_run(job, ev.timestamp, "cancelled")
    job.available_at = None
    job.reason = ev.reason


def on_requeued(job: Job, ev: e.JobRequeued) -> None:
    job.attempt_base = ev.attempt_base
    job.available_at = ev.timestamp
    job.not_before = None
    job.reason = None


def on_stale_write(job: Job, ev: e.StaleWriteRejected) -> None:
    job.last_refusal = (ev.presented_epoch, ev.command)


APPLY: dict[type, Callable[[Any, Any], None]] = {
    e.JobSubmitted: on_submitted,
    e.JobSuperseded: on_superseded,
    e.DependencyReplaced: on_dependency_replaced,
    e.JobBlocked: on_blocked,
    e.JobScheduled: on_scheduled,
    e.JobReady: on_ready,
    e.LeaseGranted: on_lease_granted,
    e.LeaseRenewed: on_lease_renewed,
    e.LeaseReleased: on_lease_released,
    e.LeaseExpired: on_lease_expired,
    e.JobStarted: on_started,
    e.PhaseReported: on_phase,
    e.Checkpointed: on_checkpoint,
    e.InsightsReported: on_insights,
    e.ArtifactRecorded: on_artifact,
    e.JobSucceeded: on_succeeded,
    e.AttemptFailed: on_attempt_failed,
    e.JobDeadLettered: on_dead_lettered,
    e.JobCancelled: on_cancelled,
    e.JobRequeued: on_requeued,
    e.StaleWriteRejected: on_stale_write,
}
