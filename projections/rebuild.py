"""Rebuilding the views from the event log, and comparing them with the live views."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain.events import DomainEvent
from domain.factory import Factory
from domain.job import Job
from domain.profile import Profile
from domain.tenant import Tenant
from projections.factory_rows import FactoryRow, ProfileRow, factory_row, profile_row
from projections.job_rows import (
    EdgeRow,
    IdempotencyRow,
    JobRow,
    QueueRow,
    job_rows,
)
from projections.tenant_rows import TenantRow, tenant_row

TABLES = (
    "fleet_jobs",
    "fleet_queue",
    "fleet_idempotency",
    "fleet_dependencies",
    "fleet_factories",
    "fleet_profiles",
    "fleet_tenants",
)


@dataclass
class ViewSet:
    """All rows of all views, as row objects."""

    jobs: list[JobRow] = field(default_factory=list)
    queue: list[QueueRow] = field(default_factory=list)
    idempotency: list[IdempotencyRow] = field(default_factory=list)
    edges: list[EdgeRow] = field(default_factory=list)
    factories: list[FactoryRow] = field(default_factory=list)
    profiles: list[ProfileRow] = field(default_factory=list)
    tenants: list[TenantRow] = field(default_factory=list)

    def by_table(self) -> dict[str, list[Any]]:
        return dict(
            zip(
                TABLES,
                (
                    self.jobs,
                    self.queue,
                    self.idempotency,
                    self.edges,
                    self.factories,
                    self.profiles,
                    self.tenants,
                ),
                strict=True,
            )
        )


@dataclass(frozen=True)
class Difference:
    table: str
    only_live: int
    only_rebuilt: int
    examples: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"{self.table}: {self.only_live} row(s) only in the live view, "
            f"{self.only_rebuilt} only in the rebuild; e.g. " + "; ".join(self.examples)
        )


def replay(events: Iterable[DomainEvent]) -> dict[UUID, Any]:
    """Fold an ordered event stream into aggregates (one per originator id)."""
    aggregates: dict[UUID, Any] = {}
    for event in events:
        aggregates[event.originator_id] = event.mutate(aggregates.get(event.originator_id))
    return aggregates


def views_from(aggregates: Iterable[Any]) -> ViewSet:
    views = ViewSet()
    for agg in aggregates:
        if isinstance(agg, Job):
            rows = job_rows(agg)
            views.jobs.append(rows.job)
            views.queue.extend([rows.queue] if rows.queue else [])
            views.idempotency.extend([rows.idempotency] if rows.idempotency else [])
            views.edges.extend(rows.edges)
        elif isinstance(agg, Factory):
            views.factories.append(factory_row(agg))
        elif isinstance(agg, Profile):
            views.profiles.append(profile_row(agg))
        elif isinstance(agg, Tenant):
            views.tenants.append(tenant_row(agg))
    return views


def _key(row: Any) -> Any:
    return row.comparable() if hasattr(row, "comparable") else row


def compare(live: ViewSet, rebuilt: ViewSet) -> list[Difference]:
    """Table by table, the rows that differ (empty when the views equal the log)."""
    differences = []
    rebuilt_tables = rebuilt.by_table()
    for table, live_rows in live.by_table().items():
        live_set = {_key(r) for r in live_rows}
        rebuilt_set = {_key(r) for r in rebuilt_tables[table]}
        if len(live_set) != len(live_rows) or live_set != rebuilt_set:
            only_live = live_set - rebuilt_set
            only_rebuilt = rebuilt_set - live_set
            examples = tuple(repr(r)[:300] for r in [*list(only_live)[:2], *list(only_rebuilt)[:2]])
            differences.append(Difference(table, len(only_live), len(only_rebuilt), examples))
    return differences
