"""What services return: plain pydantic models (the HTTP API will publish them as its
OpenAPI schema), built from aggregates and view rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, JsonValue

from domain.events import DomainEvent
from domain.job import Job
from domain.job.spec import Artifact, ErrorInfo, RunInsights
from domain.job.state_values import Run
from domain.tenant import TenantQuotas
from projections.factory_rows import FactoryRow
from projections.job_rows import JobRow
from projections.tenant_rows import TenantRow


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class LeaseView(View):
    factory_id: str
    epoch: int
    granted_at: datetime
    expires_at: datetime
    last_renewed_at: datetime | None


class DependencyView(View):
    job_id: UUID
    mode: str
    milestone: str | None


class JobView(View):
    id: UUID
    tenant: str
    state: str
    phase: str | None
    epoch: int
    lease: LeaseView | None
    attempts: int
    max_attempts: int
    checkpoint: JsonValue
    result: JsonValue
    error: ErrorInfo | None
    reason: str | None
    queue: str
    kind: str
    priority: int
    capabilities: tuple[str, ...]
    idempotency_key: str | None
    parent_id: UUID | None
    deps: tuple[DependencyView, ...]
    phases: tuple[str, ...]
    payload: dict[str, JsonValue]
    run_at: datetime | None
    available_at: datetime | None
    superseded_by: UUID | None
    supersedes: UUID | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobView:
        lease = job.lease
        return cls(
            id=job.id,
            tenant=job.tenant,
            state=str(job.state),
            phase=job.phase,
            epoch=job.epoch,
            lease=None if lease is None else LeaseView(**lease.model_dump()),
            attempts=job.attempt,
            max_attempts=job.spec.retry.max_attempts + job.attempt_base,
            checkpoint=job.checkpoint,
            result=job.result,
            error=job.error,
            reason=job.reason,
            queue=job.spec.queue,
            kind=str(job.spec.kind),
            priority=job.spec.priority,
            capabilities=job.spec.capabilities,
            idempotency_key=job.spec.idempotency_key,
            parent_id=job.spec.parent_id,
            deps=tuple(
                DependencyView(job_id=d.job_id, mode=str(d.mode), milestone=d.milestone) for d in job.deps
            ),
            phases=job.spec.phases,
            payload=job.spec.payload,
            run_at=job.spec.run_at,
            available_at=job.available_at,
            superseded_by=job.superseded_by,
            supersedes=job.supersedes,
            version=job.version,
            created_at=job.created_on,
            updated_at=job.modified_on,
        )


class JobSummary(View):
    """A listing row (from the job summary view, without the payload)."""

    id: UUID
    tenant: str
    state: str
    phase: str | None
    epoch: int
    attempts: int
    queue: str
    kind: str
    priority: int
    idempotency_key: str | None
    parent_id: UUID | None
    lease_factory_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: JobRow) -> JobSummary:
        return cls(
            id=row.job_id,
            tenant=row.tenant,
            state=row.state,
            phase=row.phase,
            epoch=row.epoch,
            attempts=row.attempt,
            queue=row.queue,
            kind=row.kind,
            priority=row.priority,
            idempotency_key=row.idempotency_key,
            parent_id=row.parent_id,
            lease_factory_id=row.lease_factory_id,
            lease_expires_at=row.lease_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class JobPage(View):
    jobs: list[JobSummary]
    next_cursor: str | None


class SubmitResult(View):
    job: JobView
    outcome: Literal["created", "existing", "superseded"]
    superseded_job_id: UUID | None = None


class ClaimedJob(View):
    job: JobView
    epoch: int
    lease_expires_at: datetime

    @classmethod
    def of(cls, job: Job) -> ClaimedJob:
        assert job.lease is not None
        return cls(job=JobView.of(job), epoch=job.lease.epoch, lease_expires_at=job.lease.expires_at)


class RenewResult(View):
    lease_expires_at: datetime | None
    cancel_requested: bool


class ItemError(View):
    code: str
    message: str
    details: dict[str, Any] = {}


class ItemResult(View):
    """One entry of a batch answer, in request order (fetch a job for its details)."""

    index: int
    ok: bool
    job_id: UUID | None = None
    outcome: Literal["created", "existing", "superseded"] | None = None
    state: str | None = None
    superseded_job_id: UUID | None = None
    error: ItemError | None = None


class HistoryEntry(View):
    version: int
    type: str
    at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, event: DomainEvent) -> HistoryEntry:
        data = event.model_dump(
            mode="json", exclude={"originator_id", "originator_version", "timestamp", "originator_topic"}
        )
        return cls(version=event.originator_version, type=type(event).__name__, at=event.timestamp, data=data)


class RunView(View):
    attempt: int
    epoch: int
    factory_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error_kind: str | None
    insights: RunInsights | None
    artifacts: list[Artifact]

    @classmethod
    def of(cls, run: Run) -> RunView:
        return cls(
            attempt=run.attempt,
            epoch=run.epoch,
            factory_id=run.factory_id,
            started_at=run.started_at,
            ended_at=run.ended_at,
            outcome=run.outcome,
            error_kind=run.error_kind,
            insights=run.insights,
            artifacts=list(run.artifacts),
        )


class FactoryView(View):
    factory_id: str
    health: str
    stale: bool
    """Its heartbeats are overdue (the reaper will mark it down on its next pass)."""
    capabilities: tuple[str, ...]
    seat_limit: int | None
    load: float
    heartbeat_timeout_seconds: float | None
    last_heartbeat_at: datetime
    registered_at: datetime

    @classmethod
    def of(cls, row: FactoryRow, now: datetime) -> FactoryView:
        timeout = row.heartbeat_timeout_seconds
        stale = (
            row.health != "down"
            and timeout is not None
            and (now - row.last_heartbeat_at).total_seconds() > timeout
        )
        return cls(
            factory_id=row.factory_id,
            health=row.health,
            stale=stale,
            capabilities=row.capabilities,
            seat_limit=row.seat_limit,
            load=row.load,
            heartbeat_timeout_seconds=timeout,
            last_heartbeat_at=row.last_heartbeat_at,
            registered_at=row.registered_at,
        )


class QuotaUsage(View):
    queued: int
    """Jobs waiting to run: queued, blocked, scheduled, failed awaiting retry (what
    ``max_queued`` limits)."""
    in_flight: int
    """Jobs leased to workers: assigned, running (what ``max_in_flight`` limits)."""
    submitted_last_minute: int
    """Jobs created in the last 60 s (what ``submits_per_minute`` limits)."""


class QuotaView(View):
    tenant: str
    quotas: TenantQuotas
    usage: QuotaUsage
    refusals: dict[str, int]
    """Submits refused so far, per quota name."""
    updated_at: datetime | None
    """When the quotas were last changed (None: never set)."""

    @classmethod
    def of(cls, tenant: str, row: TenantRow | None, usage: QuotaUsage) -> QuotaView:
        if row is None:
            return cls(tenant=tenant, quotas=TenantQuotas(), usage=usage, refusals={}, updated_at=None)
        return cls(
            tenant=tenant,
            quotas=row.quotas(),
            usage=usage,
            refusals=row.refusals(),
            updated_at=row.quotas_set_at,
        )
