"""Small helpers for the contract suite."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from coordinator.claiming import ClaimRequest
from coordinator.fleet import Fleet
from coordinator.identity import Identity
from coordinator.views import ClaimedJob
from tests.support import make_spec


def submit(fleet: Fleet, who: Identity, **spec: Any) -> UUID:
    return fleet.submit(who, make_spec(**spec)).job.id


def claim(fleet: Fleet, who: Identity, factory: str = "f1", **request: Any) -> list[ClaimedJob]:
    return fleet.claim(who, ClaimRequest(factory_id=factory, **request))


def claim_one(fleet: Fleet, who: Identity, factory: str = "f1", **request: Any) -> ClaimedJob:
    claimed = claim(fleet, who, factory, max_jobs=1, **request)
    assert len(claimed) == 1, f"expected one job, got {len(claimed)}"
    return claimed[0]


def history_types(fleet: Fleet, who: Identity, job_id: UUID) -> list[str]:
    return [h.type for h in fleet.history(who, job_id)]
