"""What both backends share: the unit of work at commit, reads, and view rebuilds.

A backend supplies ``_transaction()`` (a write transaction yielding a named-query
cursor, translating driver errors), ``_reader()``, ``_snapshot()`` and
``_commit_writes()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import StoredEvent

from adapters.eventstore.application import FleetEventStore
from adapters.store import codecs
from adapters.store.analytics_positions import SqlAnalyticsPositions
from adapters.store.spec_cache import SpecCache
from adapters.store.unit_of_work import SqlUnitOfWork, decode_job
from adapters.store.view_writer import apply_changes
from coordinator.ports import AnalyticsPositions, JobFilter, Notice, Page, TenantUsage
from domain.events import DomainEvent
from domain.job import Job
from projections.changes import ViewChanges
from projections.factory_rows import FactoryRow
from projections.rebuild import ViewSet
from projections.tenant_rows import TenantRow

EVENT_PAGE = 2000


@contextmanager
def translated(translate: Callable[[BaseException], Exception | None]) -> Iterator[None]:
    """Driver errors raised inside leave as the coordinator's errors ``translate``
    makes of them (the one choke point per backend); the rest as they are."""
    try:
        yield
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from exc


class SqlStore(ABC):
    backend: str

    def __init__(self, env: dict[str, str]):
        self.app = FleetEventStore(env=env)
        self.specs = SpecCache()

    # ------------------------------------------------------ backend supplies

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _reader(self) -> AbstractContextManager[Any]: ...

    def _snapshot(self) -> AbstractContextManager[Any]:
        """A read transaction whose reads all see one consistent snapshot."""
        return self._reader()

    @abstractmethod
    def _commit_writes(self, cursor: Any, stored: list[StoredEvent], views: ViewChanges) -> None: ...

    # ------------------------------------------------------------------ writes

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlUnitOfWork]:
        with self._transaction() as cursor:
            uow = SqlUnitOfWork(cursor, self.specs)
            yield uow
            stored, views = uow.prepare(self.app.mapper)
            if stored or not views.is_empty():
                self._commit_writes(cursor, stored, views)

    # ------------------------------------------------------------------- reads

    def get_job(self, job_id: UUID) -> Job | None:
        with self._reader() as c:
            rows = c.fetch("get_job", job_id=job_id)
            return decode_job(rows[0], c.values, self.specs) if rows else None

    def list_jobs(self, f: JobFilter) -> Page:
        with self._reader() as c:
            rows = c.fetch(
                "list_jobs",
                tenant=f.tenant,
                states=None if f.states is None else list(f.states),
                queue=f.queue,
                idempotency_key=f.idempotency_key,
                parent_id=f.parent_id,
                after=f.after,
                limit=f.limit + 1,
            )
            decoded = [codecs.job_row(r, c.values) for r in rows]
        page = decoded[: f.limit]
        cursor = page[-1].job_id if len(decoded) > f.limit else None
        return Page(page, cursor)

    def job_events(self, job_id: UUID) -> list[DomainEvent]:
        return list(self.app.events.get(job_id))  # type: ignore[arg-type]

    def job_at(self, job_id: UUID, version: int) -> Job | None:
        try:
            job: object = self.app.repository.get(job_id, version=version)
        except AggregateNotFoundError:
            return None
        return job if isinstance(job, Job) else None

    def factories(self) -> list[FactoryRow]:
        with self._reader() as c:
            return [codecs.factory_row(r, c.values) for r in c.fetch("list_factories")]

    def quota_tenants(self) -> list[TenantRow]:
        with self._reader() as c:
            return [codecs.tenant_row(r, c.values) for r in c.fetch("quota_tenants")]

    def tenant_status(self, tenant: str, since: datetime) -> tuple[TenantRow | None, TenantUsage]:
        with self._snapshot() as c:
            rows, usage = c.fetch_many(
                [("get_tenant", {"tenant": tenant}), ("tenant_usage", {"tenant": tenant, "since": since})]
            )
            row = codecs.tenant_row(rows[0], c.values) if rows else None
        u = usage[0]
        return row, TenantUsage(int(u["queued"]), int(u["in_flight"]), int(u["submitted"]))

    # ------------------------------------------------------- the notification log

    def read_notifications(self, first: int, limit: int, last: int | None = None) -> list[Notice]:
        notes = self.app.recorder.select_notifications(start=max(1, first), limit=limit, stop=last)
        to_event = self.app.mapper.to_domain_event
        return [Notice(n.id, to_event(n)) for n in notes]  # type: ignore[arg-type]

    def notification_head(self) -> Notice | None:
        head = self.app.recorder.max_notification_id()
        if not head:
            return None
        notes = self.read_notifications(head, 1)
        return notes[0] if notes else None

    def history_before(self, originator_id: UUID, version: int) -> list[DomainEvent]:
        return list(self.app.events.get(originator_id, lte=version - 1))  # type: ignore[arg-type]

    def analytics_positions(self) -> AnalyticsPositions:
        return SqlAnalyticsPositions(self._transaction, self._reader)

    # ---------------------------------------------------------------- rebuild

    def _events(self, cursor: Any) -> Iterator[DomainEvent]:
        after = 0
        while True:
            rows = cursor.fetch("select_events_page", after=after, limit=EVENT_PAGE)
            for r in rows:
                stored = StoredEvent(
                    originator_id=cursor.values.uuid(r["originator_id"]),
                    originator_version=r["originator_version"],
                    topic=r["topic"],
                    state=bytes(r["state"]),
                )
                yield self.app.mapper.to_domain_event(stored)  # type: ignore[misc]
            if len(rows) < EVENT_PAGE:
                return
            after = rows[-1]["notification_id"]

    def _dump(self, c: Any) -> ViewSet:
        v = c.values
        return ViewSet(
            jobs=[codecs.job_row(r, v) for r in c.fetch("dump_jobs")],
            queue=[codecs.queue_row(r, v) for r in c.fetch("dump_queue")],
            idempotency=[codecs.idempotency_row(r, v) for r in c.fetch("dump_idempotency")],
            edges=[codecs.edge_row(r, v) for r in c.fetch("dump_edges")],
            factories=[codecs.factory_row(r, v) for r in c.fetch("dump_factories")],
            profiles=[codecs.profile_row(r, v) for r in c.fetch("dump_profiles")],
            tenants=[codecs.tenant_row(r, v) for r in c.fetch("dump_tenants")],
        )

    def verify_views(self, rebuild: Callable[[Iterator[DomainEvent]], ViewSet]) -> tuple[ViewSet, ViewSet]:
        """(live views, views rebuilt from the log), read from one consistent snapshot."""
        with self._snapshot() as c:
            return self._dump(c), rebuild(self._events(c))

    def rebuild_views(self, rebuild: Callable[[Iterator[DomainEvent]], ViewSet]) -> ViewSet:
        """Replace every view with one rebuilt from the log, excluding writers meanwhile."""
        with self._transaction() as c:
            c.execute("lock_views")
            c.execute("lock_events")
            views = rebuild(self._events(c))
            c.execute("clear_views")
            changes = ViewChanges(
                jobs_insert=views.jobs,
                queue_insert=views.queue,
                idempotency_insert=views.idempotency,
                edges_insert=views.edges,
                factories_upsert=views.factories,
                profiles_insert=views.profiles,
                tenants_upsert=views.tenants,
            )
            apply_changes(c, changes)
            return views

    def close(self) -> None:
        self.app.close()
