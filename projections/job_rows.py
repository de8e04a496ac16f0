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
    """``fleet_jobs``: the job summary used for listing, the hot-path snapshot, and the
    lease columns behind the ``fleet_leases`` view (the reaper's and seat counts' index).
    A job's runs live in its snapshot."""

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
class JobRows:
    job: JobRow
    queue: QueueRow | None
    idempotency: IdempotencyRow | None
    edges: tuple[EdgeRow, ...]


def job_rows(job: Job) -> JobRows:
    """Every row the job contributes to the views."""
    parts = job_parts(job)
    return JobRows(job_row(job), parts.queue, parts.idempotency, parts.edges)


@dataclass(frozen=True, slots=True)
class JobParts:
    """The cheap-to-compute rows of a job besides its summary row: what a unit of work
    remembers of a job as loaded, to write only the rows a transaction changes."""

    queue: QueueRow | None
    idempotency: IdempotencyRow | None
    edges: tuple[EdgeRow, ...]


def job_parts(job: Job) -> JobParts:
    return JobParts(queue_row(job), idempotency_row(job), edge_rows(job))


def job_row(job: Job) -> JobRow:
    spec = job.spec
    lease = job.lease
    return JobRow(
        job_id=job.id,
        tenant=job.tenant,
        state=str(job.state),
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


def queue_row(job: Job) -> QueueRow | None:
    if job.state not in WAITING or job.available_at is None:
        return None
    spec = job.spec
    return QueueRow(
        job_id=job.id,
        tenant=job.tenant,
        queue=spec.queue,
        priority=spec.priority,
        state=str(job.state),
        available_at=job.available_at,
        capabilities=spec.capabilities,
        has_deps=bool(job.deps),
    )


def idempotency_row(job: Job) -> IdempotencyRow | None:
    key = job.spec.idempotency_key
    if key is None or job.state is JobState.SUPERSEDED:
        return None
    return IdempotencyRow(job.tenant, key, job.id, job.content_hash or "")


def edge_rows(job: Job) -> tuple[EdgeRow, ...]:
    return tuple(EdgeRow(job.id, d.job_id, str(d.mode), d.milestone) for d in job.deps)
