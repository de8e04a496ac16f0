"""Row factories for the ClickHouse tests: ``make_<table>(**overrides)`` in the fold's
column order (``projections.analytics.columns``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from projections.analytics.columns import COLUMNS, row

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
Row = tuple[Any, ...]


def make_event(**overrides: Any) -> Row:
    values: dict[str, Any] = {
        "tenant": "acme",
        "aggregate": "job",
        "originator_id": uuid.uuid4(),
        "version": 1,
        "notification_id": 1,
        "type": "JobSubmitted",
        "at": T0,
        "factory_id": "",
        "epoch": 0,
        "queue": "default",
        "attrs": "{}",
    }
    return row("fleet_events", values | overrides)


def make_run(**overrides: Any) -> Row:
    leased = overrides.pop("leased_at", T0 + timedelta(seconds=2))
    ready = overrides.pop("ready_at", T0)
    ended = overrides.pop("ended_at", leased + timedelta(seconds=5))
    values: dict[str, Any] = {
        "tenant": "acme",
        "job_id": uuid.uuid4(),
        "queue": "default",
        "kind": "leaf",
        "priority": 50,
        "attempt": 1,
        "epoch": 1,
        "factory_id": "f1",
        "ready_at": ready,
        "leased_at": leased,
        "ended_at": ended,
        "wait_ms": (leased - ready) / timedelta(milliseconds=1),
        "run_ms": (ended - leased) / timedelta(milliseconds=1),
        "outcome": "succeeded",
        "error_kind": "",
        "retryable": 0,
        "notification_id": 1,
    }
    return row("job_runs", values | overrides)


def make_insight(**overrides: Any) -> Row:
    values: dict[str, Any] = {
        "tenant": "acme",
        "job_id": uuid.uuid4(),
        "queue": "default",
        "attempt": 1,
        "epoch": 1,
        "factory_id": "f1",
        "model": "m-large",
        "tokens_in": 1000,
        "tokens_out": 200,
        "tokens_cached": 50,
        "cost_usd": 0.25,
        "turns": 3,
        "tool_calls": 4,
        "files_changed": 1,
        "lines_added": 10,
        "lines_deleted": 2,
        "outcome": "succeeded",
        "at": T0,
        "notification_id": 1,
    }
    return row("run_insights", values | overrides)


def make_latest(**overrides: Any) -> Row:
    values: dict[str, Any] = {
        "tenant": "acme",
        "job_id": uuid.uuid4(),
        "queue": "default",
        "kind": "leaf",
        "priority": 50,
        "state": "succeeded",
        "phase": "",
        "epoch": 1,
        "attempts": 1,
        "factory_id": "f1",
        "created_at": T0,
        "updated_at": T0,
        "version": 3,
        "notification_id": 1,
    }
    return row("jobs_latest", values | overrides)


def column(table: str, name: str) -> int:
    return COLUMNS[table].index(name)
