"""Value objects of a job's current state: its lease and its runs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from domain.job.spec import Artifact, Frozen, RunInsights

RunOutcome = Literal["succeeded", "failed", "expired", "released", "cancelled"]


class Lease(Frozen):
    factory_id: str
    epoch: int
    granted_at: datetime
    expires_at: datetime
    last_renewed_at: datetime | None = None


class Run(Frozen):
    """One lease = one run (attempt n)."""

    attempt: int
    epoch: int
    factory_id: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: RunOutcome | None = None
    error_kind: str | None = None
    insights: RunInsights | None = None
    artifacts: tuple[Artifact, ...] = ()

    def ended(self, at: datetime, outcome: RunOutcome, error_kind: str | None = None) -> Run:
        return self.model_copy(update={"ended_at": at, "outcome": outcome, "error_kind": error_kind})

    def with_insights(self, insights: RunInsights | None) -> Run:
        return self if insights is None else self.model_copy(update={"insights": insights})

    def seconds(self, now: datetime) -> float:
        return ((self.ended_at or now) - self.started_at).total_seconds()
