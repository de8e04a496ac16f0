"""The worker stops, marked fatal, when the coordinator refuses its heartbeats for good."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from uuid import UUID

from adapters.auth import Unauthenticated
from adapters.worker import WorkerConfig
from adapters.worker.runtime import Worker
from coordinator.claiming import ClaimRequest
from coordinator.reporting import Completion
from coordinator.views import ClaimedJob, ItemResult, RenewResult
from domain.factory import FactoryReport
from domain.job.spec import RunInsights


class RefusingPort:
    """Accepts the first heartbeat, then says the token expired."""

    def __init__(self) -> None:
        self.heartbeats = 0
        self._wake = threading.Event()

    def heartbeat(self, report: FactoryReport) -> None:
        self.heartbeats += 1
        if self.heartbeats > 1:
            raise Unauthenticated("the token has expired")

    def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        return []

    def renew(self, job_id: UUID, epoch: int, lease_seconds: float | None) -> RenewResult:
        raise AssertionError("nothing is leased")

    def start(self, job_id: UUID, epoch: int) -> None: ...

    def report_phase(self, job_id: UUID, epoch: int, phase: str) -> None: ...

    def checkpoint(self, job_id: UUID, epoch: int, data: object) -> None: ...

    def report_insights(self, job_id: UUID, epoch: int, insights: RunInsights) -> None: ...

    def complete(self, completions: Sequence[Completion]) -> list[ItemResult]:
        return []

    def release(self, job_id: UUID, epoch: int, reason: str) -> None: ...

    def slot_freed(self, free: Callable[[], int]) -> None: ...

    def wait_for_work(self, timeout_seconds: float) -> None:
        self._wake.wait(timeout_seconds)

    def interrupt(self) -> None:
        self._wake.set()

    def close(self) -> None: ...


def test_a_heartbeat_refused_for_good_stops_the_worker_as_fatal() -> None:
    port = RefusingPort()
    config = WorkerConfig(
        factory_id="f1", heartbeat_interval=0.05, heartbeat_timeout=5, idle_poll_seconds=0.05
    )
    worker = Worker(port, {"q": lambda ctx: None}, config)  # type: ignore[arg-type]
    worker.start()
    deadline = time.monotonic() + 5
    while not worker.stopping and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.shutdown()
    assert worker.stopping
    assert isinstance(worker.fatal, Unauthenticated)
    assert port.heartbeats == 2


class RefusedAtOncePort(RefusingPort):
    def heartbeat(self, report: FactoryReport) -> None:
        self.heartbeats += 1
        raise Unauthenticated("the token is not valid")


def test_a_worker_refused_at_its_first_heartbeat_shuts_down_at_once() -> None:
    # Given a worker whose first heartbeat (in start) is refused: no thread was started
    worker = Worker(RefusedAtOncePort(), {"q": lambda ctx: None}, WorkerConfig(factory_id="f1"))  # type: ignore[arg-type]
    try:
        worker.start()
    except Unauthenticated:
        pass
    else:
        raise AssertionError("start should raise the refusal")
    # When it shuts down
    started = time.monotonic()
    worker.shutdown()
    # Then it does so at once (no claim loop to wait for)
    assert time.monotonic() - started < 1
    assert worker.stopping
