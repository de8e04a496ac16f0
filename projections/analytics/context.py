"""What the analytics fold remembers of each aggregate between events.

A job's context is a small summary (tenant, queue, kind, priority, state, epoch, the
open run...), not the Job aggregate: the fold holds up to ~100k of them, and a job's
payload and run history are of no use to it. Each step mirrors ``domain.job.apply``
(assignments only) and takes the state from the job's transition table, so the two
cannot disagree on where an event leads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.job import events as e
from domain.job.spec import RunInsights
from domain.job.states import JobState
from domain.job.table import JOB_TRANSITIONS


def utc(at: datetime) -> datetime:
    """Every time the fold emits is timezone-aware UTC (a naive time is taken as UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass(slots=True)
class OpenRun:
    """The lease a job holds now: one run (attempt)."""

    attempt: int
    epoch: int
    factory_id: str
    leased_at: datetime
    ready_at: datetime
    insights: RunInsights | None = None
    """The last interim ``InsightsReported`` of this run."""


@dataclass(frozen=True, slots=True)
class EndedRun:
    """A run and how it ended: what a ``job_runs`` (and ``run_insights``) row is made of."""

    run: OpenRun
    ended_at: datetime
    outcome: str
    error_kind: str = ""
    retryable: bool = False
    insights: RunInsights | None = None
    """The run's usage: the final insights if the ending event gave them, else the last interim."""


@dataclass(slots=True)
class JobContext:
    job_id: UUID
    tenant: str
    queue: str
    kind: str
    priority: int
    created_at: datetime
    state: JobState
    version: int
    updated_at: datetime
    ready_at: datetime | None
    """When the job became (or, scheduled or failed, will become) claimable; None while it
    is not waiting for a lease."""
    epoch: int = 0
    attempts: int = 0
    phase: str = ""
    run: OpenRun | None = None
    last_factory: str = ""
    holders: dict[int, tuple[str, int]] = field(default_factory=dict)
    """epoch -> (factory, attempt) of every lease ever granted: who a stale write was from."""

    @classmethod
    def submitted(cls, ev: e.JobSubmitted) -> JobContext:
        at = utc(ev.timestamp)
        spec = ev.spec
        return cls(
            job_id=ev.originator_id,
            tenant=ev.tenant,
            queue=spec.queue,
            kind=str(spec.kind),
            priority=spec.priority,
            created_at=at,
            state=ev.state,
            version=ev.originator_version,
            updated_at=at,
            ready_at=None if ev.available_at is None else utc(ev.available_at),
        )

    def step(self, ev: e.JobEvent) -> EndedRun | None:
        """Fold one event (after the creating one) in; return the run it ended, if any."""
        transition = JOB_TRANSITIONS.rows.get(type(ev))
        if transition is not None:
            self.state = transition.target_for(self.state) or self.state
        self.version = ev.originator_version
        self.updated_at = utc(ev.timestamp)
        handler = _STEPS.get(type(ev))
        # An event class this fold does not know yet still moves the version: its
        # fleet_events row is written, nothing else changes.
        return None if handler is None else handler(self, ev)

    def end_run(
        self, at: datetime, outcome: str, error: Any = None, insights: RunInsights | None = None
    ) -> EndedRun | None:
        run, self.run, self.phase = self.run, None, ""
        if run is None:
            return None
        return EndedRun(
            run=run,
            ended_at=at,
            outcome=outcome,
            error_kind="" if error is None else error.kind,
            retryable=False if error is None else error.retryable,
            insights=insights if insights is not None else run.insights,
        )


def _nothing(ctx: JobContext, ev: Any) -> None:
    return None


def _not_waiting(ctx: JobContext, ev: Any) -> None:
    ctx.ready_at = None


def _scheduled(ctx: JobContext, ev: e.JobScheduled) -> None:
    ctx.ready_at = utc(ev.available_at)


def _ready(ctx: JobContext, ev: e.JobReady) -> None:
    # A due scheduled or retrying job was claimable from its due time on (a claim would
    # have promoted it), however late the scheduler's JobReady comes.
    at = utc(ev.timestamp)
    ctx.ready_at = ctx.ready_at if ctx.ready_at is not None and ctx.ready_at <= at else at


def _granted(ctx: JobContext, ev: e.LeaseGranted) -> None:
    at = utc(ev.timestamp)
    ctx.epoch, ctx.attempts, ctx.phase, ctx.last_factory = ev.epoch, ev.attempt, "", ev.factory_id
    ctx.run = OpenRun(ev.attempt, ev.epoch, ev.factory_id, at, ctx.ready_at or at)
    ctx.holders[ev.epoch] = (ev.factory_id, ev.attempt)
    ctx.ready_at = None


def _released(ctx: JobContext, ev: e.LeaseReleased) -> EndedRun | None:
    ctx.ready_at = utc(ev.timestamp)
    return ctx.end_run(ctx.ready_at, "released")


def _expired(ctx: JobContext, ev: e.LeaseExpired) -> EndedRun | None:
    ctx.ready_at = utc(ev.timestamp)
    ctx.epoch = ev.new_epoch
    return ctx.end_run(ctx.ready_at, "expired")


def _phase(ctx: JobContext, ev: e.PhaseReported) -> None:
    ctx.phase = ev.phase


def _insights(ctx: JobContext, ev: e.InsightsReported) -> None:
    if ctx.run is not None:
        ctx.run.insights = ev.insights


def _succeeded(ctx: JobContext, ev: e.JobSucceeded) -> EndedRun | None:
    return ctx.end_run(utc(ev.timestamp), "succeeded", insights=ev.insights)


def _failed(ctx: JobContext, ev: e.AttemptFailed) -> EndedRun | None:
    ctx.ready_at = None if ev.retry_at is None else utc(ev.retry_at)
    return ctx.end_run(utc(ev.timestamp), "failed", ev.error, ev.insights)


def _cancelled(ctx: JobContext, ev: e.JobCancelled) -> EndedRun | None:
    ctx.ready_at = None
    return ctx.end_run(utc(ev.timestamp), "cancelled")


def _requeued(ctx: JobContext, ev: e.JobRequeued) -> None:
    ctx.ready_at = utc(ev.timestamp)


_STEPS: dict[type, Callable[[JobContext, Any], EndedRun | None]] = {
    e.JobSuperseded: _not_waiting,
    e.DependencyReplaced: _nothing,
    e.JobBlocked: _not_waiting,
    e.JobScheduled: _scheduled,
    e.JobReady: _ready,
    e.LeaseGranted: _granted,
    e.LeaseRenewed: _nothing,
    e.LeaseReleased: _released,
    e.LeaseExpired: _expired,
    e.JobStarted: _nothing,
    e.PhaseReported: _phase,
    e.Checkpointed: _nothing,
    e.InsightsReported: _insights,
    e.ArtifactRecorded: _nothing,
    e.JobSucceeded: _succeeded,
    e.AttemptFailed: _failed,
    e.JobDeadLettered: _not_waiting,
    e.JobCancelled: _cancelled,
    e.JobRequeued: _requeued,
    e.StaleWriteRejected: _nothing,
}
"""How each job event after the first moves the context (a test checks every event in the
transition table has a step)."""


@dataclass(slots=True)
class NamedContext:
    """A factory, tenant or profile: all its later events need is who it is."""

    aggregate: str
    tenant: str
    factory_id: str
    version: int


Context = JobContext | NamedContext
