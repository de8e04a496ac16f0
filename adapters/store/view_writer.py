"""Applying a transaction's view changes through the backend's named write queries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

from adapters.store import codecs
from projections.changes import ViewChanges


class BatchWriter(Protocol):
    def write_many(self, query: str, rows: list[dict[str, Any]]) -> None: ...


def _job_id(job_id: UUID) -> dict[str, Any]:
    return {"job_id": job_id}


# Deletes first: a unique key that moves between rows (an idempotency key passing to
# the job that supersedes its holder) must be released before it is taken again.
PLAN: tuple[tuple[str, str, Callable[[Any], dict[str, Any]]], ...] = (
    ("delete_queue", "queue_delete", _job_id),
    ("delete_idempotency", "idempotency_delete", codecs.idempotency_params),
    ("delete_edges", "edges_delete", codecs.edge_params),
    ("insert_jobs", "jobs_insert", codecs.job_params),
    ("update_jobs", "jobs_update", codecs.job_update_params),
    ("insert_queue", "queue_insert", codecs.queue_params),
    ("upsert_queue", "queue_upsert", codecs.queue_params),
    ("insert_idempotency", "idempotency_insert", codecs.idempotency_params),
    ("upsert_idempotency", "idempotency_upsert", codecs.idempotency_params),
    ("insert_edges", "edges_insert", codecs.edge_params),
    ("upsert_factories", "factories_upsert", codecs.factory_params),
    ("insert_profiles", "profiles_insert", codecs.profile_params),
    ("upsert_tenants", "tenants_upsert", codecs.tenant_params),
)


def apply_changes(writer: BatchWriter, changes: ViewChanges) -> None:
    for query, attribute, to_params in PLAN:
        rows = getattr(changes, attribute)
        if rows:
            writer.write_many(query, [to_params(r) for r in rows])
