"""The event base shared by every aggregate.

Events are frozen pydantic models that the eventsourcing library can apply to its
aggregates (``CanMutateAggregate``). Released event classes are never edited: bump
``class_version`` and add ``upcast_vN_vM`` static methods, which the mapper runs
before validation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate, CanMutateAggregate
from pydantic import BaseModel, ConfigDict


class DomainEvent(BaseModel, CanMutateAggregate[UUID]):
    """A fact that happened to one aggregate, at ``originator_version``."""

    # allow_inf_nan=False: JSON would store NaN/Infinity (in a checkpoint, say) as null,
    # and the replayed aggregate would differ from the live one.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    originator_id: UUID
    originator_version: int
    timestamp: datetime

    class_version: ClassVar[int] = 1

    def apply(self, aggregate: Any) -> None:
        # Aggregates own their state changes; an event only hands itself over.
        aggregate.apply(self)


class CreationEvent(DomainEvent, CanInitAggregate[UUID]):
    """The first event of an aggregate: the library builds the aggregate from it."""

    originator_topic: str
