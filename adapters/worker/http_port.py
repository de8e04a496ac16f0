"""``HttpPort``: the worker port over the HTTP API (``FleetClient``), so the same
``Worker`` runtime drives a remote coordinator exactly as it drives ``DirectPort``.

Waiting for work is the server's job: every claim is a claim stream (``POST
/v1/claim/stream``) that the server holds open for up to ``wait_seconds``, writing each
job as soon as it is leased to this worker (handed over by a submit, or claimed when
work is announced) until it has written ``max_jobs``; ``wait_for_work`` returns at once.
The server claims at once when this worker's last claim was full (a backlog), and waits
first when it was short a moment ago, so a stream costs no claim transaction of its own
in steady state. One stream serves several jobs: no request per job, and no moment
between two requests when a submit finds this worker not waiting. ``interrupt()`` cuts
a stream short (see ``adapters.client.interrupt``), so a stop never waits for it. With
``wait_seconds=0`` claims are plain claims, and ``wait_for_work`` sleeps instead.

Completions: a batch whose answer was lost (a timeout) may have been applied; when the
runtime sends it again, the items that had landed come back ``stale-epoch`` with the
job already in the outcome's state under the same epoch. Those are our own earlier
writes, reported here as accepted (the server still records the repeat as a refused
write in the job's history).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from uuid import UUID

from pydantic import JsonValue

from adapters.client import FleetClient, Interrupter
from adapters.http.schemas import MAX_CLAIM_HTTP, MAX_WAIT_SECONDS
from coordinator.claiming import ClaimRequest
from coordinator.reporting import Completion
from coordinator.views import ClaimedJob, ItemResult, RenewResult
from domain.factory import FactoryReport
from domain.job.spec import RunInsights

DEFAULT_WAIT_SECONDS = 20.0
"""Long-poll length: an idle worker asks again this often (the server allows 30)."""

LANDED_STATES = {"succeeded": frozenset({"succeeded"}), "failed": frozenset({"failed", "dead_letter"})}
"""States a job is in right after an outcome of that kind, under the same epoch."""


class HttpPort:
    def __init__(self, client: FleetClient, *, wait_seconds: float = DEFAULT_WAIT_SECONDS):
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be 0-{MAX_WAIT_SECONDS:g}, got {wait_seconds}")
        self.client = client
        self.wait_seconds = wait_seconds
        self._interrupter = Interrupter()
        self._idle = threading.Event()
        """Without long polls (wait_seconds=0), what ``wait_for_work`` sleeps on."""

    def heartbeat(self, report: FactoryReport) -> None:
        self.client.heartbeat(report)

    def claim(self, request: ClaimRequest) -> Iterable[ClaimedJob]:
        if request.max_jobs > MAX_CLAIM_HTTP:
            request = request.model_copy(update={"max_jobs": MAX_CLAIM_HTTP})
        if self.wait_seconds <= 0 or self._interrupter.take_pending():
            # No waiting (or a stop was asked for: look, but do not wait)
            return self.client.claim(request)
        return self.client.claim_stream(
            request, wait_seconds=self.wait_seconds, interrupter=self._interrupter
        )

    def renew(self, job_id: UUID, epoch: int, lease_seconds: float | None) -> RenewResult:
        return self.client.renew(job_id, epoch, lease_seconds)

    def start(self, job_id: UUID, epoch: int) -> None:
        self.client.start(job_id, epoch)

    def report_phase(self, job_id: UUID, epoch: int, phase: str) -> None:
        self.client.report_phase(job_id, epoch, phase)

    def checkpoint(self, job_id: UUID, epoch: int, data: JsonValue) -> None:
        self.client.checkpoint(job_id, epoch, data)

    def report_insights(self, job_id: UUID, epoch: int, insights: RunInsights) -> None:
        self.client.report_insights(job_id, epoch, insights)

    def complete(self, completions: Sequence[Completion]) -> list[ItemResult]:
        results = self.client.complete(completions)
        return [_reconcile(c, r) for c, r in zip(completions, results, strict=True)]

    def release(self, job_id: UUID, epoch: int, reason: str) -> None:
        self.client.release(job_id, epoch, reason)

    def wait_for_work(self, timeout_seconds: float) -> None:
        if self.wait_seconds > 0:
            return  # the next claim waits on the server
        if self._idle.wait(timeout_seconds):
            self._idle.clear()

    def interrupt(self) -> None:
        self._interrupter.fire()
        self._idle.set()

    def close(self) -> None:
        """Abort a poll still in flight; the client belongs to the caller."""
        self._interrupter.fire()


def _reconcile(completion: Completion, result: ItemResult) -> ItemResult:
    """A stale-epoch refusal of an outcome this worker already delivered is a success."""
    error = result.error
    if result.ok or error is None or error.code != "stale-epoch":
        return result
    details = error.details
    same_epoch = details.get("current_epoch") == completion.epoch
    if same_epoch and details.get("state") in LANDED_STATES[completion.outcome]:
        return ItemResult(index=result.index, ok=True, job_id=result.job_id, state=details.get("state"))
    return result
