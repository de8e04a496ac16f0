"""The Factory aggregate: a worker host, its capabilities, seats and health.

Every heartbeat is an event (the factory's stream is its liveness history); the
factory view row serves as its snapshot so long streams cost nothing on the hot path.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate
from pydantic import Field

from domain.events import CreationEvent, DomainEvent
from domain.job.spec import MAX_CAPABILITIES, Frozen, Name
from domain.transitions import INITIAL, Transition, TransitionTable

FACTORY_NAMESPACE = uuid5(NAMESPACE_URL, "https://fleetlog.dev/factory")


def factory_uuid(name: str) -> UUID:
    """Factories are named by their operators; the aggregate id derives from the name."""
    return uuid5(FACTORY_NAMESPACE, name)


class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


class FactoryReport(Frozen):
    """What a factory says about itself in a heartbeat (validated at the edge)."""

    factory_id: Name
    capabilities: tuple[Name, ...] = Field(default=(), max_length=MAX_CAPABILITIES)
    health: Health = Health.OK
    load: Annotated[float, Field(ge=0)] = 0.0
    seat_limit: Annotated[int, Field(ge=1, le=100_000)] | None = None
    heartbeat_timeout_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = 60.0


class FactoryEvent(DomainEvent):
    pass


class FactoryRegistered(CreationEvent, FactoryEvent):
    name: str
    capabilities: tuple[str, ...]
    health: Health
    load: float
    seat_limit: int | None
    heartbeat_timeout_seconds: float | None


class FactoryHeartbeat(FactoryEvent):
    capabilities: tuple[str, ...]
    health: Health
    load: float
    seat_limit: int | None
    heartbeat_timeout_seconds: float | None


class FactoryMarkedDown(FactoryEvent):
    last_heartbeat_at: datetime
    reason: str


FACTORY_TRANSITIONS: TransitionTable[Health] = TransitionTable(
    "Factory",
    {
        FactoryRegistered: Transition.of([INITIAL], list(Health)),
        FactoryHeartbeat: Transition.of(list(Health), list(Health)),
        FactoryMarkedDown: Transition.of([Health.OK, Health.DEGRADED], [Health.DOWN]),
    },
)


class FactorySnapshot(Frozen):
    name: str
    capabilities: tuple[str, ...]
    health: Health
    load: float
    seat_limit: int | None
    heartbeat_timeout_seconds: float | None
    last_heartbeat_at: datetime
    created_on: datetime
    modified_on: datetime


class Factory(BaseAggregate[UUID]):
    def __init__(self) -> None:
        self.name = ""
        self.capabilities: tuple[str, ...] = ()
        self.health = Health.OK
        self.load = 0.0
        self.seat_limit: int | None = None
        self.heartbeat_timeout_seconds: float | None = None
        self.last_heartbeat_at = datetime.min

    @classmethod
    def register(cls, report: FactoryReport, now: datetime) -> Factory:
        FACTORY_TRANSITIONS.check(FactoryRegistered, None, report.health)
        return cls._create(
            FactoryRegistered,
            id=factory_uuid(report.factory_id),
            timestamp=now,
            name=report.factory_id,
            capabilities=tuple(sorted(set(report.capabilities))),
            health=report.health,
            load=report.load,
            seat_limit=report.seat_limit,
            heartbeat_timeout_seconds=report.heartbeat_timeout_seconds,
        )

    def heartbeat(self, report: FactoryReport, now: datetime) -> None:
        FACTORY_TRANSITIONS.check(FactoryHeartbeat, self.health, report.health)
        self.trigger_event(
            FactoryHeartbeat,
            timestamp=now,
            capabilities=tuple(sorted(set(report.capabilities))),
            health=report.health,
            load=report.load,
            seat_limit=report.seat_limit,
            heartbeat_timeout_seconds=report.heartbeat_timeout_seconds,
        )

    def is_silent(self, now: datetime) -> bool:
        timeout = self.heartbeat_timeout_seconds
        return timeout is not None and self.last_heartbeat_at + timedelta(seconds=timeout) < now

    def mark_down(self, now: datetime) -> None:
        """The reaper's command for a factory whose heartbeats stopped."""
        FACTORY_TRANSITIONS.check(FactoryMarkedDown, self.health)
        self.trigger_event(
            FactoryMarkedDown,
            timestamp=now,
            last_heartbeat_at=self.last_heartbeat_at,
            reason=f"no heartbeat for {self.heartbeat_timeout_seconds}s",
        )

    def seats_free(self, leases_held: int) -> int | None:
        return None if self.seat_limit is None else max(0, self.seat_limit - leases_held)

    def apply(self, event: FactoryEvent) -> None:
        if isinstance(event, FactoryRegistered):
            self.name = event.name
        if isinstance(event, FactoryRegistered | FactoryHeartbeat):
            self.capabilities = event.capabilities
            self.health = event.health
            self.load = event.load
            self.seat_limit = event.seat_limit
            self.heartbeat_timeout_seconds = event.heartbeat_timeout_seconds
            self.last_heartbeat_at = event.timestamp
        elif isinstance(event, FactoryMarkedDown):
            self.health = Health.DOWN

    def to_snapshot(self) -> FactorySnapshot:
        return FactorySnapshot(
            name=self.name,
            capabilities=self.capabilities,
            health=self.health,
            load=self.load,
            seat_limit=self.seat_limit,
            heartbeat_timeout_seconds=self.heartbeat_timeout_seconds,
            last_heartbeat_at=self.last_heartbeat_at,
            created_on=self.created_on,
            modified_on=self.modified_on,
        )

    @classmethod
    def restore(cls, version: int, snapshot: FactorySnapshot) -> Factory:
        factory = cls.__new__(cls)
        factory.__base_init__(
            originator_id=factory_uuid(snapshot.name),
            originator_version=version,
            timestamp=snapshot.created_on,
        )
        factory.modified_on = snapshot.modified_on
        fields: dict[str, Any] = snapshot.model_dump(exclude={"created_on", "modified_on"})
        fields["capabilities"] = tuple(fields["capabilities"])
        fields["health"] = Health(fields["health"])
        for name, value in fields.items():
            setattr(factory, name, value)
        return factory
