"""The Tenant aggregate: a tenant's admission quotas and the refusals they caused.

Tenants exist implicitly (any valid name can submit); the aggregate is created the first
time an admin sets the tenant's quotas. Setting quotas and refusing a submission are
both events, so the quota view (``fleet_tenants``) rebuilds from the log like every other.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate
from pydantic import Field

from domain.events import CreationEvent, DomainEvent
from domain.job.spec import Frozen
from domain.transitions import INITIAL, Transition, TransitionTable

TENANT_NAMESPACE = uuid5(NAMESPACE_URL, "https://fleetlog.dev/tenant")
MAX_QUOTA = 10_000_000

QuotaName = Literal["max_queued", "max_in_flight", "submits_per_minute"]
QUOTA_NAMES: tuple[QuotaName, ...] = ("max_queued", "max_in_flight", "submits_per_minute")


def tenant_uuid(name: str) -> UUID:
    """Tenants are named by their operators; the aggregate id derives from the name."""
    return uuid5(TENANT_NAMESPACE, name)


class TenantQuotas(Frozen):
    """Admission limits of one tenant; None means unlimited."""

    max_queued: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    """Jobs waiting to run (queued, blocked, scheduled, failed awaiting retry)."""
    max_in_flight: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    """Jobs leased to workers (assigned, running): claims lease no more."""
    submits_per_minute: int | None = Field(default=None, ge=0, le=MAX_QUOTA)
    """Jobs created in any 60-second window."""

    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in QUOTA_NAMES)

    def limits_admission(self) -> bool:
        """Whether submits are checked (``max_in_flight`` only ever limits claims)."""
        return self.max_queued is not None or self.submits_per_minute is not None


class TenantState(StrEnum):
    ACTIVE = "active"


class TenantEvent(DomainEvent):
    pass


class TenantRegistered(CreationEvent, TenantEvent):
    name: str


class QuotasSet(TenantEvent):
    max_queued: int | None
    max_in_flight: int | None
    submits_per_minute: int | None
    set_by: str
    """The subject of the admin who set them."""


class AdmissionRefused(TenantEvent):
    """A submit (or a whole batch) was refused because it would exceed ``quota``."""

    quota: QuotaName
    limit: int
    current: int
    requested: int
    """New jobs the refused request would have added."""


TENANT_TRANSITIONS: TransitionTable[TenantState] = TransitionTable(
    "Tenant",
    {
        TenantRegistered: Transition.of([INITIAL], [TenantState.ACTIVE]),
        QuotasSet: Transition.of([TenantState.ACTIVE]),
        AdmissionRefused: Transition.of([TenantState.ACTIVE]),
    },
)


class TenantSnapshot(Frozen):
    name: str
    quotas: TenantQuotas
    quotas_set_at: datetime | None
    quotas_set_by: str | None
    refusals: dict[str, int]
    created_on: datetime
    modified_on: datetime


class Tenant(BaseAggregate[UUID]):
    def __init__(self) -> None:
        self.name = ""
        self.state = TenantState.ACTIVE
        self.quotas = TenantQuotas()
        self.quotas_set_at: datetime | None = None
        self.quotas_set_by: str | None = None
        self.refusals: dict[str, int] = {}

    @classmethod
    def register(cls, name: str, now: datetime) -> Tenant:
        TENANT_TRANSITIONS.check(TenantRegistered, None)
        return cls._create(TenantRegistered, id=tenant_uuid(name), timestamp=now, name=name)

    def set_quotas(self, quotas: TenantQuotas, by: str, now: datetime) -> bool:
        """Record new quotas; setting the ones already in force records nothing (a
        repeated PUT does not grow the history). Returns whether anything changed."""
        TENANT_TRANSITIONS.check(QuotasSet, self.state)
        if self.quotas_set_at is not None and quotas == self.quotas:
            return False
        self.trigger_event(QuotasSet, timestamp=now, set_by=by, **quotas.model_dump())
        return True

    def refuse_admission(
        self, quota: QuotaName, *, limit: int, current: int, requested: int, now: datetime
    ) -> None:
        TENANT_TRANSITIONS.check(AdmissionRefused, self.state)
        self.trigger_event(
            AdmissionRefused, timestamp=now, quota=quota, limit=limit, current=current, requested=requested
        )

    def apply(self, event: TenantEvent) -> None:
        if isinstance(event, TenantRegistered):
            self.name = event.name
        elif isinstance(event, QuotasSet):
            self.quotas = TenantQuotas(
                max_queued=event.max_queued,
                max_in_flight=event.max_in_flight,
                submits_per_minute=event.submits_per_minute,
            )
            self.quotas_set_at = event.timestamp
            self.quotas_set_by = event.set_by
        elif isinstance(event, AdmissionRefused):
            self.refusals = {**self.refusals, event.quota: self.refusals.get(event.quota, 0) + 1}

    def to_snapshot(self) -> TenantSnapshot:
        return TenantSnapshot(
            name=self.name,
            quotas=self.quotas,
            quotas_set_at=self.quotas_set_at,
            quotas_set_by=self.quotas_set_by,
            refusals=dict(self.refusals),
            created_on=self.created_on,
            modified_on=self.modified_on,
        )

    @classmethod
    def restore(cls, version: int, snapshot: TenantSnapshot) -> Tenant:
        tenant = cls.__new__(cls)
        tenant.__base_init__(
            originator_id=tenant_uuid(snapshot.name),
            originator_version=version,
            timestamp=snapshot.created_on,
        )
        tenant.modified_on = snapshot.modified_on
        fields: dict[str, Any] = {
            "name": snapshot.name,
            "state": TenantState.ACTIVE,
            "quotas": snapshot.quotas,
            "quotas_set_at": snapshot.quotas_set_at,
            "quotas_set_by": snapshot.quotas_set_by,
            "refusals": dict(snapshot.refusals),
        }
        for name, value in fields.items():
            setattr(tenant, name, value)
        return tenant
