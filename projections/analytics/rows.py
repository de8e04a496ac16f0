"""The rows one event contributes, from the event and its aggregate's context (the
context as it is after the event)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain.events import DomainEvent
from domain.job import events as e
from projections.analytics.columns import row
from projections.analytics.context import EndedRun, JobContext, NamedContext, utc

Row = tuple[Any, ...]

ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})
"""Fields every event has: they have columns of their own, so attrs leaves them out."""

_MS = timedelta(milliseconds=1)


def attrs(ev: DomainEvent) -> str:
    """The event's own fields as compact JSON (pydantic's JSON mode: UUIDs and times as text)."""
    return ev.model_dump_json(exclude=set(ENVELOPE))


def _event_row(
    ev: DomainEvent,
    notification_id: int,
    *,
    aggregate: str,
    tenant: str,
    factory_id: str,
    epoch: int,
    queue: str,
) -> Row:
    return row(
        "fleet_events",
        {
            "tenant": tenant,
            "aggregate": aggregate,
            "originator_id": ev.originator_id,
            "version": ev.originator_version,
            "notification_id": notification_id,
            "type": type(ev).__name__,
            "at": utc(ev.timestamp),
            "factory_id": factory_id,
            "epoch": epoch,
            "queue": queue,
            "attrs": attrs(ev),
        },
    )


def named_event_row(ctx: NamedContext, notification_id: int, ev: DomainEvent) -> Row:
    return _event_row(
        ev,
        notification_id,
        aggregate=ctx.aggregate,
        tenant=ctx.tenant,
        factory_id=ctx.factory_id,
        epoch=0,
        queue="",
    )


def job_event_row(ctx: JobContext, notification_id: int, ev: e.JobEvent, ended: EndedRun | None) -> Row:
    factory_id, epoch = lease_of(ctx, ev, ended)
    return _event_row(
        ev,
        notification_id,
        aggregate="job",
        tenant=ctx.tenant,
        factory_id=factory_id,
        epoch=epoch,
        queue=ctx.queue,
    )


def lease_of(ctx: JobContext, ev: e.JobEvent, ended: EndedRun | None) -> tuple[str, int]:
    """(factory, epoch) of the lease the event concerns, ('', 0) when none: the run it
    ended, else the epoch it carries (a stale write's presented epoch) and that epoch's
    holder if it was ever granted."""
    if ended is not None:
        return ended.run.factory_id, ended.run.epoch
    if isinstance(ev, e.StaleWriteRejected):
        epoch: int | None = ev.presented_epoch
    else:
        epoch = getattr(ev, "epoch", None)
    if epoch is None:
        return "", 0
    return ctx.holders.get(epoch, ("", 0))[0], epoch


def run_row(ctx: JobContext, notification_id: int, ended: EndedRun) -> Row:
    run = ended.run
    return row(
        "job_runs",
        {
            **_job_columns(ctx),
            "attempt": run.attempt,
            "epoch": run.epoch,
            "factory_id": run.factory_id,
            "ready_at": run.ready_at,
            "leased_at": run.leased_at,
            "ended_at": ended.ended_at,
            "wait_ms": (run.leased_at - run.ready_at) / _MS,
            "run_ms": (ended.ended_at - run.leased_at) / _MS,
            "outcome": ended.outcome,
            "error_kind": ended.error_kind,
            "retryable": int(ended.retryable),
            "notification_id": notification_id,
        },
    )


def stale_row(ctx: JobContext, notification_id: int, ev: e.StaleWriteRejected) -> Row:
    """A refused write: its own row, under the epoch it presented (and that epoch's holder)."""
    at = utc(ev.timestamp)
    factory_id, attempt = ctx.holders.get(ev.presented_epoch, ("", 0))
    return row(
        "job_runs",
        {
            **_job_columns(ctx),
            "attempt": attempt,
            "epoch": ev.presented_epoch,
            "factory_id": factory_id,
            "ready_at": at,
            "leased_at": at,
            "ended_at": at,
            "wait_ms": 0.0,
            "run_ms": 0.0,
            "outcome": "stale_rejected",
            "error_kind": "",
            "retryable": 0,
            "notification_id": notification_id,
        },
    )


def insights_row(ctx: JobContext, notification_id: int, ended: EndedRun) -> Row | None:
    usage = ended.insights
    if usage is None:
        return None
    run = ended.run
    return row(
        "run_insights",
        {
            "tenant": ctx.tenant,
            "job_id": ctx.job_id,
            "queue": ctx.queue,
            "attempt": run.attempt,
            "epoch": run.epoch,
            "factory_id": run.factory_id,
            "model": usage.model or "",
            "tokens_in": usage.tokens_in,
            "tokens_out": usage.tokens_out,
            "tokens_cached": usage.tokens_cached,
            "cost_usd": usage.cost_usd,
            "turns": usage.turns,
            "tool_calls": usage.tool_calls,
            "files_changed": usage.files_changed,
            "lines_added": usage.lines_added,
            "lines_deleted": usage.lines_deleted,
            "outcome": ended.outcome,
            "at": ended.ended_at,
            "notification_id": notification_id,
        },
    )


def latest_row(ctx: JobContext, notification_id: int) -> Row:
    return row(
        "jobs_latest",
        {
            **_job_columns(ctx),
            "state": str(ctx.state),
            "phase": ctx.phase,
            "epoch": ctx.epoch,
            "attempts": ctx.attempts,
            "factory_id": ctx.last_factory,
            "created_at": ctx.created_at,
            "updated_at": ctx.updated_at,
            "version": ctx.version,
            "notification_id": notification_id,
        },
    )


def _job_columns(ctx: JobContext) -> dict[str, Any]:
    return {
        "tenant": ctx.tenant,
        "job_id": ctx.job_id,
        "queue": ctx.queue,
        "kind": ctx.kind,
        "priority": ctx.priority,
    }
