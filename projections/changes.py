"""View changes: the row-level difference a unit of work applies with its events."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from projections.factory_rows import FactoryRow, ProfileRow
from projections.job_rows import (
    EdgeRow,
    IdempotencyRow,
    JobRow,
    JobRows,
    LeaseRow,
    QueueRow,
    RunRow,
)


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
    leases_delete: list[UUID] = field(default_factory=list)
    leases_upsert: list[LeaseRow] = field(default_factory=list)
    idempotency_delete: list[IdempotencyRow] = field(default_factory=list)
    idempotency_insert: list[IdempotencyRow] = field(default_factory=list)
    idempotency_upsert: list[IdempotencyRow] = field(default_factory=list)
    edges_delete: list[EdgeRow] = field(default_factory=list)
    edges_insert: list[EdgeRow] = field(default_factory=list)
    runs_upsert: list[RunRow] = field(default_factory=list)
    factories_upsert: list[FactoryRow] = field(default_factory=list)
    profiles_insert: list[ProfileRow] = field(default_factory=list)

    def add_job(self, before: JobRows | None, after: JobRows) -> None:
        """Record what changes between a job's rows before and after the transaction."""
        if before is None:
            self._add_new_job(after)
            return
        self.jobs_update.append(after.job)
        old_queue = before.queue
        if after.queue != old_queue:
            if after.queue is not None:
                self.queue_upsert.append(after.queue)
            else:
                self.queue_delete.append(after.job.job_id)
        old_lease = before.lease
        if after.lease != old_lease:
            if after.lease is not None:
                self.leases_upsert.append(after.lease)
            else:
                self.leases_delete.append(after.job.job_id)
        old_idem = before.idempotency
        if after.idempotency != old_idem:
            if old_idem is not None:
                self.idempotency_delete.append(old_idem)
            if after.idempotency is not None:
                self.idempotency_upsert.append(after.idempotency)
        old_edges = set(before.edges)
        new_edges = set(after.edges)
        self.edges_delete.extend(old_edges - new_edges)
        self.edges_insert.extend(e for e in after.edges if e not in old_edges)
        old_runs = {r.attempt: r for r in before.runs}
        self.runs_upsert.extend(r for r in after.runs if old_runs.get(r.attempt) != r)

    def _add_new_job(self, rows: JobRows) -> None:
        # Only inserts, which a backend may stream in bulk (PostgreSQL COPY).
        self.jobs_insert.append(rows.job)
        if rows.queue is not None:
            self.queue_insert.append(rows.queue)
        if rows.lease is not None:
            self.leases_upsert.append(rows.lease)
        if rows.idempotency is not None:
            self.idempotency_insert.append(rows.idempotency)
        self.edges_insert.extend(rows.edges)
        self.runs_upsert.extend(rows.runs)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__dataclass_fields__)
