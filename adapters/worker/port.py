"""What a worker needs from the coordinator, and nothing else.

``DirectPort`` implements it in-process over a ``Fleet``; the HTTP transport will
implement the same protocol, so the runtime never knows which one it drives. Every
job write presents the lease epoch; a stale one raises ``domain.errors.StaleEpoch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol
from uuid import UUID

from pydantic import JsonValue

from coordinator.claiming import ClaimRequest
from coordinator.reporting import Completion
from coordinator.views import ClaimedJob, ItemResult, RenewResult
from domain.factory import FactoryReport
from domain.job.spec import RunInsights


class FleetPort(Protocol):
    def heartbeat(self, report: FactoryReport) -> None:
        """Say the factory is alive (a factory marked down rejoins with it)."""
        ...

    def claim(self, request: ClaimRequest) -> Iterable[ClaimedJob]:
        """Lease up to ``request.max_jobs`` jobs: a list claimed in one transaction, or
        (``HttpPort``) the jobs of a claim stream as each is leased. The caller takes
        each job as it comes and iterates to the end."""
        ...

    def renew(self, job_id: UUID, epoch: int, lease_seconds: float | None) -> RenewResult: ...

    def start(self, job_id: UUID, epoch: int) -> None: ...

    def report_phase(self, job_id: UUID, epoch: int, phase: str) -> None: ...

    def checkpoint(self, job_id: UUID, epoch: int, data: JsonValue) -> None: ...

    def report_insights(self, job_id: UUID, epoch: int, insights: RunInsights) -> None: ...

    def complete(self, completions: Sequence[Completion]) -> list[ItemResult]:
        """Many finished attempts in one transaction; each item is accepted or refused
        on its own (a stale one comes back with error code ``stale-epoch``)."""
        ...

    def release(self, job_id: UUID, epoch: int, reason: str) -> None: ...

    def slot_freed(self, free: Callable[[], int]) -> None:
        """A handler slot was freed; ``free()`` tells how many are free now (any thread).
        A port whose claims stay open may offer them to the coordinator (``HttpPort``'s
        refilled claim streams); others ignore it."""
        ...

    def wait_for_work(self, timeout_seconds: float) -> None:
        """Block until new work may be available, or ``timeout_seconds`` pass. Spurious
        returns are fine: the caller claims again either way."""
        ...

    def interrupt(self) -> None:
        """Make a blocked ``wait_for_work`` return now (another thread is stopping the
        worker); harmless when nobody waits."""
        ...

    def close(self) -> None:
        """Free what the port holds (a listening connection); the fleet is not closed."""
        ...
