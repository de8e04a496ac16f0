"""The four raw ClickHouse tables the analytics fold writes: columns in order, and what
each column means (the analysts' reference is generated from ``DESCRIPTIONS``).

The order of ``COLUMNS[table]`` is the order of the migration's columns and of every
row tuple the fold emits; ``row()`` builds a tuple from named values so no caller
depends on positions.
"""

from __future__ import annotations

from typing import Any

_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "fleet_events": (
        (
            "tenant",
            "The tenant the event belongs to: the job's or profile's tenant, the tenant's own "
            "name for tenant events, '' for fleet-wide factory events.",
        ),
        ("aggregate", "What the event happened to: 'job', 'factory', 'tenant' or 'profile'."),
        ("originator_id", "The id of the job, factory, tenant or profile (UUID)."),
        ("version", "The event's position in its aggregate's history (1 = the creating event)."),
        ("notification_id", "The event's position in the whole event log (commit order)."),
        ("type", "The event's class name, e.g. 'LeaseGranted', 'JobSucceeded', 'FactoryHeartbeat'."),
        ("at", "When the event happened (UTC, microseconds)."),
        (
            "factory_id",
            "The factory the event concerns: the holder of the lease a lease event or worker "
            "write refers to (LeaseGranted, renewals, reports, success/failure, release, expiry, a "
            "cancel that ended a run, a rejected stale write when its epoch is known); the factory "
            "itself for factory events; '' otherwise.",
        ),
        (
            "epoch",
            "The lease epoch the event refers to (a worker write's epoch, the expired lease's "
            "epoch, a stale write's presented epoch, the lease a cancel ended); 0 when none.",
        ),
        ("queue", "The job's queue; '' for non-job events."),
        ("attrs", "The event's own fields as compact JSON (without id, version and timestamp)."),
    ),
    "job_runs": (
        ("tenant", "The job's tenant."),
        ("job_id", "The job (UUID)."),
        ("queue", "The job's queue."),
        ("kind", "The job's kind: 'leaf' or 'composite'."),
        ("priority", "The job's priority, 0 (runs first) to 100."),
        (
            "attempt",
            "Which attempt the run was (1, 2, ...; counts on across operator requeues); "
            "0 on a stale_rejected row whose epoch was never granted.",
        ),
        ("epoch", "The run's lease epoch; on a stale_rejected row the epoch the refused write presented."),
        (
            "factory_id",
            "The factory that held the lease; on a stale_rejected row the holder of the "
            "presented epoch, '' if that epoch was never granted.",
        ),
        (
            "ready_at",
            "When the job last became claimable before this lease (submitted, ready, due for "
            "retry or run_at, released, expired or requeued); on a stale_rejected row = ended_at.",
        ),
        ("leased_at", "When the lease was granted; on a stale_rejected row = ended_at."),
        ("ended_at", "When the run ended (or the stale write was refused)."),
        (
            "wait_ms",
            "leased_at - ready_at in milliseconds: time claimable before a worker took it "
            "(0 on stale_rejected rows).",
        ),
        ("run_ms", "ended_at - leased_at in milliseconds (0 on stale_rejected rows)."),
        (
            "outcome",
            "How the run ended: 'succeeded', 'failed', 'expired' (the reaper took the lease "
            "back), 'released' (the worker gave it back), 'cancelled' (cancelled while leased), or "
            "'stale_rejected' (a write under a lease the job no longer had).",
        ),
        ("error_kind", "The worker's error kind on a failed run; '' otherwise."),
        ("retryable", "1 if the worker marked the failure retryable, else 0 (0 when not failed)."),
        ("notification_id", "The notification id of the event that ended the run (or refused the write)."),
    ),
    "run_insights": (
        ("tenant", "The job's tenant."),
        ("job_id", "The job (UUID)."),
        ("queue", "The job's queue."),
        ("attempt", "Which attempt the run was."),
        ("epoch", "The run's lease epoch."),
        ("factory_id", "The factory that ran it."),
        ("model", "The model the worker reported; '' if none."),
        ("tokens_in", "Input tokens of the run."),
        ("tokens_out", "Output tokens of the run."),
        ("tokens_cached", "Cached input tokens of the run."),
        ("cost_usd", "Cost of the run in US dollars."),
        ("turns", "Model turns in the run."),
        ("tool_calls", "Tool calls in the run."),
        ("files_changed", "Files the run changed."),
        ("lines_added", "Lines the run added."),
        ("lines_deleted", "Lines the run deleted."),
        ("outcome", "How the run ended (as job_runs.outcome, never 'stale_rejected')."),
        ("at", "When the run ended."),
        ("notification_id", "The notification id of the event that ended the run."),
    ),
    "jobs_latest": (
        ("tenant", "The job's tenant."),
        ("job_id", "The job (UUID)."),
        ("queue", "The job's queue."),
        ("kind", "The job's kind: 'leaf' or 'composite'."),
        ("priority", "The job's priority, 0 (runs first) to 100."),
        (
            "state",
            "The job's state: blocked, scheduled, queued, assigned, running, succeeded, failed "
            "(will retry), dead_letter, cancelled or superseded.",
        ),
        ("phase", "The phase the current run last reported; '' when not running or none reported."),
        ("epoch", "The job's fencing epoch (after an expiry, one above the expired lease's)."),
        ("attempts", "Leases granted so far (the last attempt number, counting across requeues)."),
        ("factory_id", "The factory of the latest lease (the holder while leased); '' if never leased."),
        ("created_at", "When the job was submitted."),
        ("updated_at", "When the job's latest event happened."),
        ("version", "The version of the job's latest event (ReplacingMergeTree keeps the highest)."),
        ("notification_id", "The notification id of the job's latest event."),
    ),
}

TABLES: dict[str, str] = {
    "fleet_events": "Every event of every aggregate, one row each.",
    "job_runs": "One row per attempt that ended, plus one per refused stale write.",
    "run_insights": "One row per ended run that reported usage (its final figures).",
    "jobs_latest": "Each job's state after its latest event (one row per job once merged).",
}
"""Table -> one-line meaning."""

COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(name for name, _ in columns) for table, columns in _TABLES.items()
}
"""Table -> column names, in the order of the table and of every emitted row."""

DESCRIPTIONS: dict[str, dict[str, str]] = {table: dict(columns) for table, columns in _TABLES.items()}
"""Table -> column -> one-line meaning."""

_INDEX: dict[str, frozenset[str]] = {table: frozenset(names) for table, names in COLUMNS.items()}


def row(table: str, values: dict[str, Any]) -> tuple[Any, ...]:
    """The row tuple for ``table`` from values named by column (all of them, no others)."""
    if values.keys() != _INDEX[table]:
        raise KeyError(f"{table}: columns {sorted(values.keys() ^ _INDEX[table])} missing or unknown")
    return tuple(values[name] for name in COLUMNS[table])
