"""The rows one job contributes to each view."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic_core import to_json

from domain.job import Job
from domain.job.states import WAITING, JobState


def canonical(json_text: str) -> str:
    """JSON text in one canonical form, so text from a jsonb column compares equal."""
    return json.dumps(json.loads(json_text), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class JobRow:
    """``fleet_jobs``: the job summary used for listing, and the hot-path snapshot."""

    job_id: UUID
    tenant: str
    state: str
    kind: str
    queue: str
    priority: int
    idempotency_key: str | None
    parent_id: UUID | None
    phase: str | None
    epoch: int
    attempt: int
    version: int
    created_at: datetime
    updated_at: datetime
    available_at: datetime | None
    lease_factory_id: str | None
    lease_expires_at: datetime | None
    spec_json: str
    snapshot_json: str

    def comparable(self) -> tuple[Any, ...]:
        parsed = (canonical(self.spec_json), canonical(self.snapshot_json))
        return (*(getattr(self, f) for f in self.__slots__[:-2]), *parsed)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """``fleet_queue``: jobs that are claimable now or once ``available_at`` passes."""

    job_id: UUID
    tenant: str
    queue: str
    priority: int
    state: str
    available_at: datetime
    capabilities: tuple[str, ...]
    has_deps: bool


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """``fleet_leases``: who holds which job until when (the reaper scans it)."""

    job_id: UUID
    tenant: str
    factory_id: str
    epoch: int
    granted_at: datetime
    expires_at: datetime
    last_renewed_at: datetime | None


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    """``fleet_idempotency``: (tenant, key) -> the job currently answering to the key."""

    tenant: str
    key: str
    job_id: UUID
    content_hash: str


@dataclass(frozen=True, slots=True)
class EdgeRow:
    """``fleet_dependencies``: job_id waits for depends_on."""

    job_id: UUID
    depends_on: UUID
    mode: str
    milestone: str | None


@dataclass(frozen=True, slots=True)
class RunRow:
    """``fleet_runs``: one row per lease (attempt), with its outcome and insights."""

    job_id: UUID
    attempt: int
    tenant: str
    epoch: int
    factory_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    error_kind: str | None
    insights_json: str | None
    artifacts_json: str

    def comparable(self) -> tuple[Any, ...]:
        insights = None if self.insights_json is None else canonical(self.insights_json)
        return (*(getattr(self, f) for f in self.__slots__[:-2]), insights, canonical(self.artifacts_json))


@dataclass(frozen=True, slots=True)
class JobRows:
    job: JobRow
    queue: QueueRow | None
    lease: LeaseRow | None
    idempotency: IdempotencyRow | None
    edges: tuple[EdgeRow, ...]
    runs: tuple[RunRow, ...]


def job_rows(job: Job) -> JobRows:
    spec = job.spec
    lease = job.lease
    state = job.state
    job_row = JobRow(
        job_id=job.id,
        tenant=job.tenant,
        state=str(state),
        kind=str(spec.kind),
        queue=spec.queue,
        priority=spec.priority,
        idempotency_key=spec.idempotency_key,
        parent_id=spec.parent_id,
        phase=job.phase,
        epoch=job.epoch,
        attempt=job.attempt,
        version=job.version,
        created_at=job.created_on,
        updated_at=job.modified_on,
        available_at=job.available_at,
        lease_factory_id=None if lease is None else lease.factory_id,
        lease_expires_at=None if lease is None else lease.expires_at,
        spec_json=spec.json_text,
        snapshot_json=to_json(job.snapshot_fields()).decode(),
    )
    queue_row = None
    if state in WAITING and job.available_at is not None:
        queue_row = QueueRow(
            job_id=job.id,
            tenant=job.tenant,
            queue=spec.queue,
            priority=spec.priority,
            state=str(state),
            available_at=job.available_at,
            capabilities=spec.capabilities,
            has_deps=bool(job.deps),
        )
    lease_row = None
    if lease is not None:
        lease_row = LeaseRow(
            job_id=job.id,
            tenant=job.tenant,
            factory_id=lease.factory_id,
            epoch=lease.epoch,
            granted_at=lease.granted_at,
            expires_at=lease.expires_at,
            last_renewed_at=lease.last_renewed_at,
        )
    idem = None
    if spec.idempotency_key is not None and state is not JobState.SUPERSEDED:
        idem = IdempotencyRow(job.tenant, spec.idempotency_key, job.id, job.content_hash or "")
    edges = tuple(EdgeRow(job.id, d.job_id, str(d.mode), d.milestone) for d in job.deps)
    runs = tuple(
        RunRow(
            job_id=job.id,
            attempt=r.attempt,
            tenant=job.tenant,
            epoch=r.epoch,
            factory_id=r.factory_id,
            started_at=r.started_at,
            ended_at=r.ended_at,
            outcome=r.outcome,
            error_kind=r.error_kind,
            insights_json=None if r.insights is None else r.insights.model_dump_json(),
            artifacts_json="[" + ",".join(a.model_dump_json() for a in r.artifacts) + "]",
        )
        for r in job.runs
    )
    return JobRows(job_row, queue_row, lease_row, idem, edges, runs)
