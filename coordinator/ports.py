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
from typing import Any, Protocol
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

    def work_signal(self, queues: Collection[str] | None = None) -> WorkSignal:
        """A new signal for one waiter (LISTEN on PostgreSQL, polling on SQLite)."""
        ...

    def close(self) -> None: ...
