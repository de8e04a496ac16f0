"""``DirectPort``: the worker port implemented in-process over a ``Fleet``.

Used by ``python -m adapters.worker`` with a data directory or a database URL, and by
tests. Waiting for work LISTENs on PostgreSQL and polls with a backoff on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from uuid import UUID

from pydantic import JsonValue

from coordinator.claiming import ClaimRequest
from coordinator.fleet import Fleet
from coordinator.identity import Identity
from coordinator.ports import WorkSignal
from coordinator.reporting import Completion
from coordinator.views import ClaimedJob, ItemResult, RenewResult
from domain.factory import FactoryReport
from domain.job.spec import RunInsights


class DirectPort:
    def __init__(
        self,
        fleet: Fleet,
        identity: Identity,
        *,
        wake: WorkSignal | None = None,
        queues: Collection[str] | None = None,
    ):
        self.fleet = fleet
        self.identity = identity
        self._wake = wake if wake is not None else fleet.ctx.store.work_signal(queues)

    def heartbeat(self, report: FactoryReport) -> None:
        self.fleet.heartbeat(self.identity, report)

    def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        # Listen before looking: a submit committing after this claim's snapshot then
        # always leaves a notification behind for the next wait.
        self._wake.arm()
        jobs = self.fleet.claim(self.identity, request)
        if jobs:
            self._wake.work_found()
        return jobs

    def renew(self, job_id: UUID, epoch: int, lease_seconds: float | None) -> RenewResult:
        return self.fleet.renew(self.identity, job_id, epoch, lease_seconds)

    def start(self, job_id: UUID, epoch: int) -> None:
        self.fleet.start(self.identity, job_id, epoch)

    def report_phase(self, job_id: UUID, epoch: int, phase: str) -> None:
        self.fleet.report_phase(self.identity, job_id, epoch, phase)

    def checkpoint(self, job_id: UUID, epoch: int, data: JsonValue) -> None:
        self.fleet.checkpoint(self.identity, job_id, epoch, data)

    def report_insights(self, job_id: UUID, epoch: int, insights: RunInsights) -> None:
        self.fleet.report_insights(self.identity, job_id, epoch, insights)

    def complete(self, completions: Sequence[Completion]) -> list[ItemResult]:
        return self.fleet.complete(self.identity, completions)

    def release(self, job_id: UUID, epoch: int, reason: str) -> None:
        self.fleet.release(self.identity, job_id, epoch, reason)

    def slot_freed(self, free: Callable[[], int]) -> None:
        pass  # claims here are one transaction each: nothing stays open to offer slots to

    def wait_for_work(self, timeout_seconds: float) -> None:
        self._wake.wait(timeout_seconds)

    def interrupt(self) -> None:
        self._wake.interrupt()

    def close(self) -> None:
        self._wake.close()
