"""Everything that can happen to a job, as past-tense facts.

A released class is never edited: bump ``class_version`` and add an upcaster.
Every worker-originated event carries the lease ``epoch`` it was written under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import JsonValue

from domain.events import CreationEvent, DomainEvent
from domain.job.spec import (
    Artifact,
    Dependency,
    ErrorInfo,
    FailureReason,
    JobSpec,
    RunInsights,
)
from domain.job.states import JobState


class JobEvent(DomainEvent):
    """Base of the job's events."""


class JobSubmitted(CreationEvent, JobEvent):
    tenant: str
    spec: JobSpec
    content_hash: str | None
    """Set when the job has an idempotency key (the only time contents are compared)."""
    deps: tuple[Dependency, ...]
    """Resolved dependencies (soft milestones filled in)."""
    state: JobState
    available_at: datetime | None
    supersedes: UUID | None = None


class JobSuperseded(JobEvent):
    by_job_id: UUID


class DependencyReplaced(JobEvent):
    old_job_id: UUID
    new_job_id: UUID


class JobBlocked(JobEvent):
    waiting_on: tuple[UUID, ...]


class JobScheduled(JobEvent):
    available_at: datetime


class JobReady(JobEvent):
    reason: Literal["dependencies_met", "run_at_reached", "retry_due"]


class LeaseGranted(JobEvent):
    factory_id: str
    epoch: int
    attempt: int
    expires_at: datetime


class LeaseRenewed(JobEvent):
    epoch: int
    expires_at: datetime


class LeaseReleased(JobEvent):
    epoch: int
    reason: str


class LeaseExpired(JobEvent):
    epoch: int
    """The epoch of the lease that expired."""
    new_epoch: int
    """The fencing epoch from now on: the expired holder's writes are stale."""
    expired_at: datetime
    last_renewed_at: datetime | None
    reason: Literal["lease_timeout", "factory_down"]


class JobStarted(JobEvent):
    epoch: int


class PhaseReported(JobEvent):
    epoch: int
    phase: str


class Checkpointed(JobEvent):
    epoch: int
    checkpoint: JsonValue


class InsightsReported(JobEvent):
    epoch: int
    insights: RunInsights


class ArtifactRecorded(JobEvent):
    epoch: int
    artifact: Artifact


class JobSucceeded(JobEvent):
    epoch: int
    result: JsonValue = None
    insights: RunInsights | None = None


class AttemptFailed(JobEvent):
    epoch: int
    error: ErrorInfo
    retry_at: datetime | None
    """When the job may run again; None when it will not (a dead letter follows)."""
    insights: RunInsights | None = None


class JobDeadLettered(JobEvent):
    reason: FailureReason
    detail: str
    dependency_id: UUID | None = None


class JobCancelled(JobEvent):
    reason: str
    by: str


class JobRequeued(JobEvent):
    by: str
    attempt_base: int
    """Attempts used before this requeue; the retry budget counts from here."""


class StaleWriteRejected(JobEvent):
    presented_epoch: int
    current_epoch: int
    command: str
