"""The analytics fold: domain events in, ClickHouse rows out (pure: no clock, no I/O).

The consumer feeds notifications in log order. For each event the fold needs its
aggregate's context; one first met mid-history (after a restart, or once evicted from
the bounded LRU) is *primed*: ``needs_priming`` says so, and ``prime`` replays the
aggregate's earlier events through the very same steps as ``apply``, without emitting.
So the rows of an event never depend on batch boundaries, restarts or eviction.

Typical use, per batch::

    for notification_id, event in notifications:
        if fold.needs_priming(event.originator_id, event.originator_version):
            fold.prime(store.events(event.originator_id, below=event.originator_version))
        fold.apply(notification_id, event)
    sink.write(fold.take())

After a failed write, re-reading the same range with the same fold is safe: the
contexts are ahead of the re-read events, ``needs_priming`` answers True, and priming
from version 1 rebuilds them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from domain.events import DomainEvent
from domain.factory import FactoryRegistered
from domain.job import events as e
from domain.profile import ProfileRegistered
from domain.tenant import TenantRegistered
from projections.analytics.columns import COLUMNS
from projections.analytics.context import Context, EndedRun, JobContext, NamedContext
from projections.analytics.errors import NotPrimed, UnknownAggregate
from projections.analytics.rows import (
    Row,
    insights_row,
    job_event_row,
    latest_row,
    named_event_row,
    run_row,
    stale_row,
)

RowBatch = dict[str, list[tuple[Any, ...]]]
"""Table -> rows, each a tuple in the order of ``COLUMNS[table]``."""

APPENDED = ("fleet_events", "job_runs", "run_insights")
"""Tables that get a row per event (or ended run); jobs_latest keeps one row per job."""


class AnalyticsFold:
    def __init__(self, max_contexts: int = 100_000):
        if max_contexts < 1:
            raise ValueError("max_contexts must be at least 1")
        self.max_contexts = max_contexts
        self._contexts: OrderedDict[UUID, Context] = OrderedDict()
        self._rows: dict[str, list[Row]] = {table: [] for table in APPENDED}
        self._latest: dict[UUID, Row] = {}

    # ------------------------------------------------------------------ API

    def needs_priming(self, originator_id: UUID, version: int) -> bool:
        """Whether ``prime`` must run before the aggregate's event at ``version`` can be
        applied: the fold has no context for it, or one not at ``version - 1``."""
        if version <= 1:
            return False
        ctx = self._contexts.get(originator_id)
        return ctx is None or ctx.version != version - 1

    def prime(self, events: Iterable[DomainEvent]) -> None:
        """Fold earlier events of one aggregate (versions 1..k, or continuing its context)
        into its context without emitting rows."""
        for event in events:
            self._advance(event)

    def apply(self, notification_id: int, event: DomainEvent) -> None:
        """Fold one event and append its rows to the pending batch."""
        ctx, ended = self._advance(event)
        if isinstance(ctx, NamedContext):
            self._rows["fleet_events"].append(named_event_row(ctx, notification_id, event))
            return
        assert isinstance(event, e.JobEvent)
        self._emit_job(ctx, notification_id, event, ended)

    def take(self) -> RowBatch:
        """The rows since the last ``take`` (jobs_latest: one row per job, as after its
        last event), in ``COLUMNS`` order of tables; the pending batch is cleared."""
        batch: RowBatch = {table: [] for table in COLUMNS}
        batch.update(self._rows)
        batch["jobs_latest"] = list(self._latest.values())
        self._rows = {table: [] for table in APPENDED}
        self._latest = {}
        return batch

    # ------------------------------------------------------------ internals

    def _advance(self, event: DomainEvent) -> tuple[Context, EndedRun | None]:
        version = event.originator_version
        if version == 1:
            # A creating event starts the context afresh (also when re-reading a range).
            ctx, ended = _created(event), None
        else:
            found = self._contexts.get(event.originator_id)
            if found is None or found.version != version - 1:
                raise NotPrimed(event.originator_id, version, None if found is None else found.version)
            ctx = found
            ended = _step(ctx, event)
        self._remember(event.originator_id, ctx)
        return ctx, ended

    def _remember(self, originator_id: UUID, ctx: Context) -> None:
        self._contexts[originator_id] = ctx
        self._contexts.move_to_end(originator_id)
        if len(self._contexts) > self.max_contexts:
            # The least recently used goes; if it shows up again it is primed again.
            self._contexts.popitem(last=False)

    def _emit_job(
        self, ctx: JobContext, notification_id: int, event: e.JobEvent, ended: EndedRun | None
    ) -> None:
        self._rows["fleet_events"].append(job_event_row(ctx, notification_id, event, ended))
        if ended is not None:
            self._rows["job_runs"].append(run_row(ctx, notification_id, ended))
            usage = insights_row(ctx, notification_id, ended)
            if usage is not None:
                self._rows["run_insights"].append(usage)
        if isinstance(event, e.StaleWriteRejected):
            self._rows["job_runs"].append(stale_row(ctx, notification_id, event))
        # Re-inserted so that jobs_latest comes out in the order of each job's last event.
        self._latest.pop(ctx.job_id, None)
        self._latest[ctx.job_id] = latest_row(ctx, notification_id)


def _created(event: DomainEvent) -> Context:
    if isinstance(event, e.JobSubmitted):
        return JobContext.submitted(event)
    if isinstance(event, FactoryRegistered):
        # Factories are fleet-wide: no tenant.
        return NamedContext("factory", "", event.name, 1)
    if isinstance(event, TenantRegistered):
        return NamedContext("tenant", event.name, "", 1)
    if isinstance(event, ProfileRegistered):
        return NamedContext("profile", event.tenant, "", 1)
    raise UnknownAggregate(type(event).__name__)


def _step(ctx: Context, event: DomainEvent) -> EndedRun | None:
    if isinstance(ctx, JobContext) and isinstance(event, e.JobEvent):
        return ctx.step(event)
    ctx.version = event.originator_version
    return None
