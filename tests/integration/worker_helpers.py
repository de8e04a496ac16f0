"""Helpers for the worker runtime tests: a worker wired to a real fleet, bounded
waits, a reaper running alongside, and event-history shortcuts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from adapters.worker import Handler, Worker, WorkerConfig
from adapters.worker.direct import DirectPort
from coordinator.fleet import Fleet
from coordinator.identity import Identity, Role
from coordinator.reporting import Completion
from coordinator.views import HistoryEntry, ItemResult

T = TypeVar("T")

SUBMITTER = Identity.of("tester", "acme")
WORKER = Identity.of("worker", None, Role.WORKER)


def wait_until(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:  # None and False both mean "not yet"
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def history(fleet: Fleet, job_id: UUID) -> list[HistoryEntry]:
    return fleet.history(SUBMITTER, job_id)


def types(fleet: Fleet, job_id: UUID) -> list[str]:
    return [e.type for e in history(fleet, job_id)]


def events(fleet: Fleet, job_id: UUID, kind: str) -> list[HistoryEntry]:
    return [e for e in history(fleet, job_id) if e.type == kind]


def state(fleet: Fleet, job_id: UUID) -> str:
    return fleet.get(SUBMITTER, job_id).state


class RecordingPort(DirectPort):
    """The real port, remembering the size of each completion batch."""

    def __init__(self, fleet: Fleet, identity: Identity = WORKER):
        super().__init__(fleet, identity)
        self.batches: list[int] = []
        self.claims: list[int] = []

    def claim(self, request: Any) -> Any:
        claimed = super().claim(request)
        self.claims.append(len(claimed))
        return claimed

    def complete(self, completions: Sequence[Completion]) -> list[ItemResult]:
        self.batches.append(len(completions))
        return super().complete(completions)


def config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {"factory_id": "test-factory", "grace_seconds": 1.0}
    values.update(overrides)
    return WorkerConfig.model_validate(values)


@contextmanager
def running_worker(
    fleet: Fleet, handlers: Mapping[str, Handler], port: DirectPort | None = None, **overrides: Any
) -> Iterator[Worker]:
    port = port or DirectPort(fleet, WORKER)
    worker = Worker(port, handlers, config(**overrides))
    worker.start()
    try:
        yield worker
    finally:
        worker.shutdown()
        port.close()


@contextmanager
def reaper_running(fleet: Fleet, every: float = 0.05) -> Iterator[None]:
    """The reaper's passes on the real clock, as ``fleetlog serve`` would run them."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            fleet.reaper.run_once()

    thread = threading.Thread(target=loop, name="test-reaper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
