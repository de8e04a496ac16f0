"""Analytics positions (``fleet_analytics_positions``), through a store's named queries.

Short transactions of their own, never inside a unit of work: a consumer's bookkeeping
must not hold the events table or the views.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from coordinator.ports import AnalyticsPosition


class SqlAnalyticsPositions:
    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Any]],
        reader: Callable[[], AbstractContextManager[Any]],
    ):
        self._transaction = transaction
        self._reader = reader

    def get(self, projection: str) -> AnalyticsPosition | None:
        with self._reader() as c:
            rows = c.fetch("analytics_position", projection=projection)
            return _position(rows[0], c.values) if rows else None

    def all(self) -> list[AnalyticsPosition]:
        with self._reader() as c:
            return [_position(r, c.values) for r in c.fetch("analytics_positions")]

    def begin(
        self, projection: str, position: int, span: tuple[int, int], leader: str, now: datetime
    ) -> bool:
        first, last = span
        with self._transaction() as c:
            rows = c.fetch(
                "analytics_begin",
                projection=projection,
                position=position,
                first=first,
                last=last,
                leader=leader,
                now=now,
            )
        return bool(rows)

    def commit(self, projection: str, last: int, now: datetime) -> bool:
        with self._transaction() as c:
            rows = c.fetch("analytics_commit", projection=projection, last=last, now=now)
        return bool(rows)

    def prepare_swap(self, projection: str, database: str, position: int, leader: str, now: datetime) -> None:
        with self._transaction() as c:
            c.execute(
                "analytics_prepare_swap",
                projection=projection,
                database=database,
                position=position,
                leader=leader,
                now=now,
            )

    def finish_swap(self, projection: str, now: datetime) -> None:
        with self._transaction() as c:
            c.execute("analytics_finish_swap", projection=projection, now=now)

    def request_rebuild(self, projection: str, now: datetime) -> None:
        with self._transaction() as c:
            c.execute("analytics_request_rebuild", projection=projection, now=now)


def _opt_ts(values: Any, v: Any) -> datetime | None:
    return None if v is None else values.ts(v)


def _position(r: Any, v: Any) -> AnalyticsPosition:
    pending = None if r["pending_first"] is None else (int(r["pending_first"]), int(r["pending_last"]))
    swap = None if r["swap_database"] is None else (str(r["swap_database"]), int(r["swap_position"]))
    return AnalyticsPosition(
        projection=r["projection"],
        position=int(r["position"]),
        pending=pending,
        updated_at=_opt_ts(v, r["updated_at"]),
        leader=r["leader"],
        rebuild_requested_at=_opt_ts(v, r["rebuild_requested_at"]),
        rebuilt_at=_opt_ts(v, r["rebuilt_at"]),
        swap=swap,
    )
