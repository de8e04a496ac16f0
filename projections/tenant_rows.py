"""The row a tenant contributes to ``fleet_tenants``: its quotas and refusal counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.tenant import Tenant, TenantQuotas
from projections.job_rows import canonical


@dataclass(frozen=True, slots=True)
class TenantRow:
    """``fleet_tenants``: one row per tenant whose quotas were ever set (and the Tenant
    aggregate's hot-path snapshot). The limit columns are what admission and claims
    read; ``refusals`` counts refused submits per quota name."""

    tenant: str
    max_queued: int | None
    max_in_flight: int | None
    submits_per_minute: int | None
    refusals_json: str
    quotas_set_at: datetime | None
    version: int
    snapshot_json: str

    def comparable(self) -> tuple[Any, ...]:
        return (
            *(getattr(self, f) for f in self.__slots__[:4]),
            canonical(self.refusals_json),
            self.quotas_set_at,
            self.version,
            canonical(self.snapshot_json),
        )

    def quotas(self) -> TenantQuotas:
        return TenantQuotas(
            max_queued=self.max_queued,
            max_in_flight=self.max_in_flight,
            submits_per_minute=self.submits_per_minute,
        )

    def refusals(self) -> dict[str, int]:
        counts: dict[str, int] = json.loads(self.refusals_json)
        return counts


def tenant_row(tenant: Tenant) -> TenantRow:
    quotas = tenant.quotas
    return TenantRow(
        tenant=tenant.name,
        max_queued=quotas.max_queued,
        max_in_flight=quotas.max_in_flight,
        submits_per_minute=quotas.submits_per_minute,
        refusals_json=json.dumps(tenant.refusals, sort_keys=True),
        quotas_set_at=tenant.quotas_set_at,
        version=tenant.version,
        snapshot_json=tenant.to_snapshot().model_dump_json(),
    )
