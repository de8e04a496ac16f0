"""How far behind the log an analytics projection is (``GET /v1/analytics/status``,
``fleetlog analytics status``): read from the position row and the log's head, so any
process can answer, not only the leader."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from coordinator.ports import Clock, Store


@dataclass(frozen=True)
class AnalyticsStatus:
    projection: str
    position: int
    """Every event up to this notification id is in ClickHouse."""
    head: int
    """The log's last notification id."""
    events_behind: int
    seconds_behind: float
    """Age of the oldest event not yet in ClickHouse (0 when caught up)."""
    pending: tuple[int, int] | None
    leader: str | None
    updated_at: datetime | None
    rebuilt_at: datetime | None
    rebuild_requested_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("updated_at", "rebuilt_at", "rebuild_requested_at"):
            data[key] = None if data[key] is None else data[key].isoformat()
        data["pending"] = None if self.pending is None else list(self.pending)
        return data


def analytics_status(store: Store, clock: Clock, projection: str) -> AnalyticsStatus:
    position = store.analytics_positions().get(projection)
    done = 0 if position is None else position.position
    head_note = store.notification_head()
    head = 0 if head_note is None else head_note.notification_id
    behind = store.read_notifications(done + 1, 1) if head > done else []
    seconds = (clock.now() - behind[0].event.timestamp).total_seconds() if behind else 0.0
    # Ids may have gaps (a rolled-back PostgreSQL transaction burns its ids), so count the
    # events themselves when few are behind; far behind, the id distance is close enough.
    events_behind = max(0, head - done)
    if 0 < events_behind <= 10_000:
        events_behind = len(store.read_notifications(done + 1, events_behind, head))
    return AnalyticsStatus(
        projection=projection,
        position=done,
        head=head,
        events_behind=events_behind,
        seconds_behind=max(0.0, seconds),
        pending=None if position is None else position.pending,
        leader=None if position is None else position.leader,
        updated_at=None if position is None else position.updated_at,
        rebuilt_at=None if position is None else position.rebuilt_at,
        rebuild_requested_at=None if position is None else position.rebuild_requested_at,
    )
