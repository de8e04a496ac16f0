"""View changes: the row-level difference a unit of work applies with its events."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from domain.job import Job
from projections.factory_rows import FactoryRow, ProfileRow
from projections.job_rows import (
    EdgeRow,
    IdempotencyRow,
    JobParts,
    JobRow,
    JobRows,
    QueueRow,
    job_parts,
    job_row,
    job_rows,
)
from projections.tenant_rows import TenantRow


@dataclass
class ViewChanges:
    """Everything one transaction changes in the views, grouped per table.

    Adapters apply deletes before inserts/upserts within a table so that a key moving
    between rows (an idempotency key passing to the superseding job) never collides.
    """

    jobs_insert: list[JobRow] = field(default_factory=list)
    jobs_update: list[JobRow] = field(default_factory=list)
    queue_delete: list[UUID] = field(default_factory=list)
    queue_insert: list[QueueRow] = field(default_factory=list)
    queue_upsert: list[QueueRow] = field(default_factory=list)
    idempotency_delete: list[IdempotencyRow] = field(default_factory=list)
    idempotency_insert: list[IdempotencyRow] = field(default_factory=list)
    idempotency_upsert: list[IdempotencyRow] = field(default_factory=list)
    edges_delete: list[EdgeRow] = field(default_factory=list)
    edges_insert: list[EdgeRow] = field(default_factory=list)
    factories_upsert: list[FactoryRow] = field(default_factory=list)
    profiles_insert: list[ProfileRow] = field(default_factory=list)
    tenants_upsert: list[TenantRow] = field(default_factory=list)

    def add_job(self, before: JobParts | None, job: Job) -> None:
        """Record the rows that change between a job as loaded (``before``; None for a new
        job) and as it is now: its summary row always, the others only if they changed."""
        if before is None:
            self._add_new_job(job_rows(job))
            return
        self.jobs_update.append(job_row(job))
        after = job_parts(job)
        if after.queue != before.queue:
            if after.queue is not None:
                self.queue_upsert.append(after.queue)
            else:
                self.queue_delete.append(job.id)
        if after.idempotency != before.idempotency:
            if before.idempotency is not None:
                self.idempotency_delete.append(before.idempotency)
            if after.idempotency is not None:
                self.idempotency_upsert.append(after.idempotency)
        if after.edges != before.edges:
            old_edges, new_edges = set(before.edges), set(after.edges)
            self.edges_delete.extend(e for e in before.edges if e not in new_edges)
            self.edges_insert.extend(e for e in after.edges if e not in old_edges)

    def _add_new_job(self, rows: JobRows) -> None:
        # Only inserts, which a backend may stream in bulk (PostgreSQL COPY).
        self.jobs_insert.append(rows.job)
        if rows.queue is not None:
            self.queue_insert.append(rows.queue)
        if rows.idempotency is not None:
            self.idempotency_insert.append(rows.idempotency)
        self.edges_insert.extend(rows.edges)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__dataclass_fields__)


def newly_claimable_queues(changes: ViewChanges) -> set[str]:
    """Queues in which this change made a job claimable now (a claimer waiting on them
    should look again); jobs that will only be due later are not counted."""
    return {r.queue for r in (*changes.queue_insert, *changes.queue_upsert) if r.state == "queued"}
