"""Verifying and rebuilding the views from the event log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from coordinator.context import Context
from coordinator.errors import Forbidden
from coordinator.identity import Identity, Role
from domain.events import DomainEvent
from projections.rebuild import Difference, ViewSet, compare, replay, views_from


def _fleet_admin(identity: Identity, action: str) -> None:
    # The views hold every tenant's rows: only a fleet-wide operator may touch them all.
    identity.require(Role.ADMIN, action)
    if identity.tenant is not None:
        raise Forbidden(action, "admin (fleet-wide, not bound to a tenant)")


def rebuild_from(events: Iterator[DomainEvent]) -> ViewSet:
    return views_from(replay(events).values())


@dataclass(frozen=True)
class VerifyReport:
    rows: dict[str, int]
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences


class ProjectionAdmin:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def verify(self, identity: Identity) -> VerifyReport:
        """Rebuild every view from the log (in memory) and compare with the live ones."""
        _fleet_admin(identity, "verify projections")
        live, rebuilt = self.ctx.store.verify_views(rebuild_from)
        counts = {table: len(rows) for table, rows in live.by_table().items()}
        return VerifyReport(counts, compare(live, rebuilt))

    def rebuild(self, identity: Identity) -> dict[str, int]:
        """Replace every view with one rebuilt from the log."""
        _fleet_admin(identity, "rebuild projections")
        views = self.ctx.store.rebuild_views(rebuild_from)
        return {table: len(rows) for table, rows in views.by_table().items()}
