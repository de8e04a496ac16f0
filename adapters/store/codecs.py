"""Rows to query parameters and back, with the per-backend value encodings.

Codecs produce and consume plain Python values (UUID, aware datetime, tuples); a
backend's ``Values`` turns them into what its driver wants (PostgreSQL takes them
natively, SQLite wants text) and back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from projections.factory_rows import FactoryRow, ProfileRow
from projections.job_rows import EdgeRow, IdempotencyRow, JobRow, QueueRow
from projections.tenant_rows import TenantRow


class Values(Protocol):
    """How one backend stores UUIDs, timestamps, string arrays and booleans."""

    def uuid(self, v: Any) -> UUID: ...
    def ts(self, v: Any) -> datetime: ...
    def strings(self, v: Any) -> tuple[str, ...]: ...
    def boolean(self, v: Any) -> bool: ...


def _opt(convert: Any, v: Any) -> Any:
    return None if v is None else convert(v)


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


# ------------------------------------------------------------------ write params


def job_params(r: JobRow) -> dict[str, Any]:
    return {
        "job_id": r.job_id,
        "tenant": r.tenant,
        "state": r.state,
        "kind": r.kind,
        "queue": r.queue,
        "priority": r.priority,
        "idempotency_key": r.idempotency_key,
        "parent_id": r.parent_id,
        "phase": r.phase,
        "epoch": r.epoch,
        "attempt": r.attempt,
        "version": r.version,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "available_at": r.available_at,
        "lease_factory_id": r.lease_factory_id,
        "lease_expires_at": r.lease_expires_at,
        "spec": r.spec_json,
        "snapshot": r.snapshot_json,
    }


def job_update_params(r: JobRow) -> dict[str, Any]:
    """The columns a transition changes (the spec and the identity never do)."""
    return {
        "job_id": r.job_id,
        "state": r.state,
        "phase": r.phase,
        "epoch": r.epoch,
        "attempt": r.attempt,
        "version": r.version,
        "updated_at": r.updated_at,
        "available_at": r.available_at,
        "lease_factory_id": r.lease_factory_id,
        "lease_expires_at": r.lease_expires_at,
        "snapshot": r.snapshot_json,
    }


def queue_params(r: QueueRow) -> dict[str, Any]:
    return {
        "job_id": r.job_id,
        "tenant": r.tenant,
        "queue": r.queue,
        "priority": r.priority,
        "state": r.state,
        "available_at": r.available_at,
        "capabilities": r.capabilities,
        "has_deps": r.has_deps,
    }


def idempotency_params(r: IdempotencyRow) -> dict[str, Any]:
    return {"tenant": r.tenant, "key": r.key, "job_id": r.job_id, "content_hash": r.content_hash}


def edge_params(r: EdgeRow) -> dict[str, Any]:
    return {"job_id": r.job_id, "depends_on": r.depends_on, "mode": r.mode, "milestone": r.milestone}


def factory_params(r: FactoryRow) -> dict[str, Any]:
    return {
        "factory_id": r.factory_id,
        "health": r.health,
        "capabilities": r.capabilities,
        "seat_limit": r.seat_limit,
        "load": r.load,
        "heartbeat_timeout_seconds": r.heartbeat_timeout_seconds,
        "last_heartbeat_at": r.last_heartbeat_at,
        "registered_at": r.registered_at,
        "version": r.version,
        "snapshot": r.snapshot_json,
    }


def profile_params(r: ProfileRow) -> dict[str, Any]:
    return {
        "profile_id": r.profile_id,
        "tenant": r.tenant,
        "name": r.name,
        "version": r.version,
        "content_hash": r.content_hash,
        "content": r.content_json,
        "registered_at": r.registered_at,
    }


def tenant_params(r: TenantRow) -> dict[str, Any]:
    return {
        "tenant": r.tenant,
        "max_queued": r.max_queued,
        "max_in_flight": r.max_in_flight,
        "submits_per_minute": r.submits_per_minute,
        "refusals": r.refusals_json,
        "quotas_set_at": r.quotas_set_at,
        "version": r.version,
        "snapshot": r.snapshot_json,
    }


# ------------------------------------------------------------------- read rows


def job_row(d: Any, v: Values) -> JobRow:
    return JobRow(
        job_id=v.uuid(d["job_id"]),
        tenant=d["tenant"],
        state=d["state"],
        kind=d["kind"],
        queue=d["queue"],
        priority=d["priority"],
        idempotency_key=d["idempotency_key"],
        parent_id=_opt(v.uuid, d["parent_id"]),
        phase=d["phase"],
        epoch=d["epoch"],
        attempt=d["attempt"],
        version=d["version"],
        created_at=v.ts(d["created_at"]),
        updated_at=v.ts(d["updated_at"]),
        available_at=_opt(v.ts, d["available_at"]),
        lease_factory_id=d["lease_factory_id"],
        lease_expires_at=_opt(v.ts, d["lease_expires_at"]),
        spec_json=d["spec"],
        snapshot_json=d["snapshot"],
    )


def queue_row(d: Any, v: Values) -> QueueRow:
    return QueueRow(
        job_id=v.uuid(d["job_id"]),
        tenant=d["tenant"],
        queue=d["queue"],
        priority=d["priority"],
        state=d["state"],
        available_at=v.ts(d["available_at"]),
        capabilities=v.strings(d["capabilities"]),
        has_deps=v.boolean(d["has_deps"]),
    )


def idempotency_row(d: Any, v: Values) -> IdempotencyRow:
    return IdempotencyRow(d["tenant"], d["key"], v.uuid(d["job_id"]), d["content_hash"])


def edge_row(d: Any, v: Values) -> EdgeRow:
    return EdgeRow(v.uuid(d["job_id"]), v.uuid(d["depends_on"]), d["mode"], d["milestone"])


def factory_row(d: Any, v: Values) -> FactoryRow:
    return FactoryRow(
        factory_id=d["factory_id"],
        health=d["health"],
        capabilities=v.strings(d["capabilities"]),
        seat_limit=d["seat_limit"],
        load=float(d["load"]),
        heartbeat_timeout_seconds=_opt(float, d["heartbeat_timeout_seconds"]),
        last_heartbeat_at=v.ts(d["last_heartbeat_at"]),
        registered_at=v.ts(d["registered_at"]),
        version=d["version"],
        snapshot_json=d["snapshot"],
    )


def profile_row(d: Any, v: Values) -> ProfileRow:
    return ProfileRow(
        profile_id=v.uuid(d["profile_id"]),
        tenant=d["tenant"],
        name=d["name"],
        version=d["version"],
        content_hash=d["content_hash"],
        content_json=d["content"],
        registered_at=v.ts(d["registered_at"]),
    )


def tenant_row(d: Any, v: Values) -> TenantRow:
    return TenantRow(
        tenant=d["tenant"],
        max_queued=d["max_queued"],
        max_in_flight=d["max_in_flight"],
        submits_per_minute=d["submits_per_minute"],
        refusals_json=d["refusals"],
        quotas_set_at=_opt(v.ts, d["quotas_set_at"]),
        version=d["version"],
        snapshot_json=d["snapshot"],
    )
