"""Every external dependency of the coordinator, in one place.

Adapters implement these: ``adapters/sqlite_store.py`` and ``adapters/postgres_store.py``
for the store, ``adapters/system.py`` for clock, ids and randomness. Tests use the same
stores against real databases and fake only the clock and the random source.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from domain.dependencies import DependencyStatus
from domain.events import DomainEvent
from domain.factory import Factory
from domain.job import Job
from domain.tenant import Tenant
from projections.factory_rows import FactoryRow, ProfileRow
from projections.job_rows import IdempotencyRow, JobRow
from projections.rebuild import ViewSet
from projections.tenant_rows import TenantRow

T = TypeVar("T")


class WorkSignal(Protocol):
    """Tells a waiting claimer that claimable work may have arrived."""

    def arm(self) -> None:
        """Start listening (if not yet) before looking for work, so nothing is missed."""
        ...

    def wait(self, timeout: float) -> None:
        """Return when work may have arrived, on ``interrupt()``, or after ``timeout``."""
        ...

    def work_found(self) -> None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class IdGenerator(Protocol):
    def new_id(self) -> UUID: ...


class RandomSource(Protocol):
    def sample(self) -> float:
        """A float in [0, 1): retry jitter and the like."""
        ...


@dataclass(frozen=True)
class ClaimFilter:
    """Which queued jobs a claim may take (eligibility, not ordering)."""

    now: datetime
    capabilities: tuple[str, ...]
    tenants: tuple[str, ...] | None
    """None: every tenant (a fleet-wide worker)."""
    queues: tuple[str, ...] | None
    """None: every queue."""


@dataclass(frozen=True)
class InFlight:
    """A capped tenant's leased jobs, counted under its claim gate."""

    limit: int | None
    """``max_in_flight`` as stored now (None: no longer capped)."""
    leased: int


@dataclass(frozen=True)
class ClaimContext:
    """What a claim decides on, read (and the factory locked) in one go."""

    factory: Factory | None
    leases_held: int
    tenants: list[str]
    """Tenants with eligible work, in name order (only looked up for fleet-wide claims)."""
    capped: dict[str, InFlight | None] = field(default_factory=dict)
    """For each tenant the claim asked to gate: its leased jobs, or None when another
    claim holds the tenant's gate (skip the tenant this time)."""


@dataclass(frozen=True)
class AdmissionContext:
    """What admission decides on: the tenant (locked) and the counts it asked for."""

    tenant: Tenant | None
    waiting: int | None
    """Jobs waiting to run (queued, blocked, scheduled, failed); None: not counted."""
    created_since: int | None
    """Jobs created after the given instant; None: not counted."""


@dataclass(frozen=True)
class TenantUsage:
    waiting: int
    in_flight: int
    created_since: int


@dataclass(frozen=True)
class JobFilter:
    tenant: str | None
    states: tuple[str, ...] | None = None
    queue: str | None = None
    idempotency_key: str | None = None
    parent_id: UUID | None = None
    limit: int = 100
    after: UUID | None = None
    """Keyset cursor: the last job id of the previous page (ids are time-ordered)."""


class UnitOfWork(Protocol):
    """One short write transaction: lock what you read, change aggregates, commit.

    Aggregates loaded here are locked until commit (``FOR UPDATE`` on PostgreSQL, the
    single writer lock on SQLite). On commit their pending events are appended through
    the eventsourcing recorder and the views change in the same transaction.
    """

    def lock_jobs(self, ids: Collection[UUID]) -> dict[UUID, Job]: ...

    def dependency_status(self, tenant: str, ids: Collection[UUID]) -> dict[UUID, DependencyStatus]:
        """Status of the given jobs of ``tenant`` (share-locked so they cannot change
        under a new dependent); unknown or other-tenant ids are absent."""
        ...

    def dependencies_of(self, ids: Collection[UUID]) -> dict[UUID, list[UUID]]: ...

    def dependents_of(self, ids: Collection[UUID], *, blocked_only: bool) -> list[UUID]: ...

    def find_idempotent(self, tenant: str, key: str) -> IdempotencyRow | None: ...

    def claim_context(
        self,
        factory_name: str,
        f: ClaimFilter,
        prefetch: tuple[str, int] | None = None,
        capped: Sequence[str] = (),
    ) -> ClaimContext:
        """Lock the factory's row, count its leases, and list the tenants with eligible
        work (when the filter spans more than one tenant). With ``prefetch=(tenant, n)``,
        also lock that tenant's ``n`` best eligible jobs in the same go: a following
        ``lock_claimable`` this covers is answered from them, without another query.

        For each tenant in ``capped``, take its claim gate (claims of one capped tenant
        take turns until commit) and count its leased jobs after that. A claim filtered to
        one tenant waits for the gate; a wider claim skips a tenant whose gate is taken."""
        ...

    def guard_hand_over(self, factory_name: str, f: ClaimFilter, factory_caps: Sequence[str] | None) -> None:
        """Make the commit check what a claim for the factory decided without reading:
        the factory is not down, its capabilities are still ``factory_caps`` (None: the
        claim named its own), it has a seat free, and no job is claimable for ``f``
        (the factory's row is locked for the check, as every claim for it locks it).
        Otherwise nothing commits and the unit of work raises ``GuessMissed``. Sent with
        the commit where the store can (one round trip), checked at once where it cannot."""
        ...

    def lock_claimable(
        self, f: ClaimFilter, quotas: Sequence[tuple[str | None, int]], exclude: Collection[UUID]
    ) -> list[list[Job]]:
        """For each (tenant, limit): lock up to ``limit`` eligible jobs of that tenant (or
        of any tenant in the filter when None), highest priority then oldest, skipping
        jobs another transaction holds."""
        ...

    def lock_expired_leases(self, now: datetime, limit: int) -> list[Job]: ...

    def lock_due_jobs(self, now: datetime, limit: int) -> list[Job]: ...

    def lock_factory(self, name: str) -> Factory | None: ...

    def lock_silent_factories(self, now: datetime, limit: int) -> list[Factory]: ...

    def leases_held(self, factory_name: str) -> int: ...

    def lock_jobs_leased_by(self, factory_name: str) -> list[Job]: ...

    def get_profile(self, tenant: str, name: str, version: int) -> ProfileRow | None: ...

    def lock_tenant(self, name: str) -> Tenant | None: ...

    def admission_context(self, tenant: str, *, waiting: bool, since: datetime | None) -> AdmissionContext:
        """Lock the tenant (if it exists), then count, as the caller asks, its waiting jobs
        and the jobs it created after ``since`` (after the lock: the counts include
        everything the previous holder of the lock committed)."""
        ...

    def nth_job_since(self, tenant: str, since: datetime, offset: int) -> datetime | None:
        """The creation time of the tenant's ``offset + 1``-th oldest job created after
        ``since``, if there are that many."""
        ...

    def add(self, *aggregates: Any) -> None:
        """Register aggregates whose pending events commit with this unit of work."""
        ...


@dataclass(frozen=True)
class Page:
    rows: list[JobRow]
    next_cursor: UUID | None


class LoopCommits(Protocol):
    """A store's units of work run on an event loop's thread, for those that need no
    answer before their commit (a guessed hand-over, ``Claiming.offer_to``): the loop
    runs ``work`` at once and awaits its one round trip instead of two hops to a thread
    and back."""

    async def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work`` and commit what it did, once. ``WouldRead`` when it asks the
        store anything (nothing sent); ``GuessMissed``, ``Conflict``, ``Unavailable`` as a
        unit of work's commit raises them (nothing written). Never retried here: the
        caller runs ``work`` again the ordinary way (``Context.transact``)."""
        ...

    async def open(self) -> None:
        """Be ready for the first unit of work (connections opened, sessions prepared);
        ``Unavailable`` if the store cannot be reached (``transact`` tries again)."""
        ...

    async def close(self) -> None: ...


class Store(Protocol):
    """The event store and its views (SQLite embedded, PostgreSQL in production)."""

    backend: str

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...

    def get_job(self, job_id: UUID) -> Job | None: ...

    def list_jobs(self, f: JobFilter) -> Page: ...

    def job_events(self, job_id: UUID) -> list[DomainEvent]: ...

    def job_at(self, job_id: UUID, version: int) -> Job | None: ...

    def factories(self) -> list[FactoryRow]: ...

    def quota_tenants(self) -> list[TenantRow]:
        """Every tenant with at least one quota set."""
        ...

    def tenant_status(self, tenant: str, since: datetime) -> tuple[TenantRow | None, TenantUsage]:
        """The tenant's row (None: never configured) and its current usage (jobs created
        after ``since`` for the per-minute window)."""
        ...

    def verify_views(self, rebuild: Callable[[Iterator[DomainEvent]], ViewSet]) -> tuple[ViewSet, ViewSet]:
        """(live views, ``rebuild(all events in log order)``), from one consistent snapshot."""
        ...

    def rebuild_views(self, rebuild: Callable[[Iterator[DomainEvent]], ViewSet]) -> ViewSet:
        """Replace every view with ``rebuild(all events)``, keeping writers out meanwhile."""
        ...

    def ping(self) -> None: ...

    def loop_commits(self) -> LoopCommits | None:
        """Units of work an event loop runs itself and commits without blocking, where
        the store has them (PostgreSQL); None: run every unit of work on a thread."""
        ...

    def work_signal(self, queues: Collection[str] | None = None) -> WorkSignal:
        """A new signal for one waiter (LISTEN on PostgreSQL, polling on SQLite)."""
        ...

    # ------------------------------------------------ the log, for catch-up consumers

    def read_notifications(self, first: int, limit: int, last: int | None = None) -> list[Notice]:
        """Up to ``limit`` events with notification ids from ``first`` (and up to ``last``),
        in id order. Ids are assigned in commit order, so a range never changes once read."""
        ...

    def notification_head(self) -> Notice | None:
        """The last event in the log (None: the log is empty)."""
        ...

    def history_before(self, originator_id: UUID, version: int) -> list[DomainEvent]:
        """An aggregate's events before ``version``, oldest first (a consumer's priming)."""
        ...

    def log_signal(self) -> WorkSignal:
        """Wakes a consumer when events are appended (LISTEN on PostgreSQL, polling on SQLite)."""
        ...

    def analytics_positions(self) -> AnalyticsPositions: ...

    def leader_lock(self, name: str) -> LeaderLock:
        """A lock that at most one process holds at a time, fleet-wide, for ``name``."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------ analytics (issue 4)


@dataclass(frozen=True)
class Notice:
    """An event with its place in the log."""

    notification_id: int
    event: DomainEvent


@dataclass(frozen=True)
class AnalyticsPosition:
    projection: str
    position: int
    """Every event up to this notification id is in the sink."""
    pending: tuple[int, int] | None
    """A range being written (recorded before the write): re-read exactly after a crash."""
    updated_at: datetime | None = None
    leader: str | None = None
    rebuild_requested_at: datetime | None = None
    rebuilt_at: datetime | None = None
    swap: tuple[str, int] | None = None
    """(rebuilt database, its position) while a rebuild is being swapped in."""


class AnalyticsPositions(Protocol):
    """Where each analytics projection has got to, kept beside the event log."""

    def get(self, projection: str) -> AnalyticsPosition | None: ...

    def all(self) -> list[AnalyticsPosition]: ...

    def begin(
        self, projection: str, position: int, span: tuple[int, int], leader: str, now: datetime
    ) -> bool:
        """Record ``span`` (first, last) as pending; False when the position is no longer
        ``position`` (someone else moved it)."""
        ...

    def commit(self, projection: str, last: int, now: datetime) -> bool:
        """Move the position to ``last``, clearing the pending range it ends."""
        ...

    def prepare_swap(
        self, projection: str, database: str, position: int, leader: str, now: datetime
    ) -> None: ...

    def finish_swap(self, projection: str, now: datetime) -> None: ...

    def request_rebuild(self, projection: str, now: datetime) -> None: ...


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...

    def held(self) -> bool:
        """Still ours? (False once the lock's connection is gone: leadership is lost.)"""
        ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class PartsPressure:
    active_parts_max: int
    """The most active parts in one partition of the analytics tables."""
    merges_running: int


class AnalyticsSink(Protocol):
    """Where analytics rows go (ClickHouse: a server or the embedded chDB engine)."""

    database: str

    def write(self, batch: dict[str, list[tuple[Any, ...]]], token: str) -> None:
        """One insert per non-empty table; a retried ``token`` is dropped, not doubled."""
        ...

    def pressure(self) -> PartsPressure: ...

    def row_counts(self) -> dict[str, int]: ...

    def version_ranges(self) -> dict[UUID, tuple[int, int, int]]:
        """Per aggregate in ``fleet_events``: (lowest version, highest version, rows)."""
        ...

    def fresh(self, database: str) -> AnalyticsSink:
        """A sink over a new, empty database with the same schema (for a rebuild)."""
        ...

    def swap_in(self, fresh: str) -> None:
        """Make database ``fresh``'s tables the live ones (and drop it); safe to repeat."""
        ...

    def has_database(self, name: str) -> bool: ...
