"""What a handler sees: its job, the lease epoch, fenced writes, and a cancel signal.

A ``JobContext`` also decides, once and under a lock, whether the attempt's outcome
may be reported: the handler finishing and the lease being lost, cancelled or
released race, and exactly one of them wins.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from enum import StrEnum
from uuid import UUID

from pydantic import JsonValue

from adapters.worker.port import FleetPort
from coordinator.views import ClaimedJob, JobView
from domain.errors import StaleEpoch
from domain.job.spec import RunInsights

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,62}$")


def error_kind(text: str) -> str:
    """A class name or free text as an error kind (lower-case slug): ValueError ->
    value_error, HTTPError -> http_error."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", text).lower()
    slug = re.sub(r"[^a-z0-9_.:-]+", "_", snake).strip("_.:-")[:63]
    return slug if _NAME.match(slug) else "error"


class NonRetryable(Exception):
    """Raise from a handler to fail the attempt for good (the job dead-letters)."""

    def __init__(self, kind: str, message: str = ""):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = error_kind(kind)
        self.message = message


class Stop(StrEnum):
    CANCELLED = "cancelled"
    """A renewal said the job was cancelled."""
    LOST = "lost"
    """The lease is gone: it expired and was reaped, or a write was refused as stale."""
    RELEASED = "released"
    """This worker is shutting down and gave the job back."""


class LeaseLost(Exception):
    """Raised by a context write once the job is no longer ours: stop working on it."""

    def __init__(self, job_id: UUID, why: Stop):
        super().__init__(f"job {job_id}: {why}; not writing")
        self.job_id = job_id
        self.why = why


class JobContext:
    def __init__(self, port: FleetPort, claimed: ClaimedJob):
        self.job: JobView = claimed.job
        self.epoch = claimed.epoch
        self.cancelled = threading.Event()
        """Set when the job was cancelled, its lease lost, or the worker released it."""
        self._port = port
        self._lock = threading.Lock()
        self._stop: Stop | None = None
        self._finished = False

    @property
    def job_id(self) -> UUID:
        return self.job.id

    @property
    def stop_reason(self) -> Stop | None:
        return self._stop

    # ----------------------------------------------------------- handler API

    def checkpoint(self, data: JsonValue) -> None:
        """Save progress; a later attempt finds it in ``job.checkpoint``."""
        self._write(lambda: self._port.checkpoint(self.job.id, self.epoch, data))

    def phase(self, name: str) -> None:
        self._write(lambda: self._port.report_phase(self.job.id, self.epoch, name))

    def insights(self, insights: RunInsights) -> None:
        self._write(lambda: self._port.report_insights(self.job.id, self.epoch, insights))

    def _write(self, call: Callable[[], None]) -> None:
        if self._stop is not None:
            raise LeaseLost(self.job.id, self._stop)
        try:
            call()
        except StaleEpoch as exc:
            self.halt(Stop.LOST)
            raise LeaseLost(self.job.id, Stop.LOST) from exc

    # ----------------------------------------------------------- runtime API

    def halt(self, why: Stop) -> bool:
        """Stop the attempt without reporting it; False if it already finished or
        stopped (whoever comes first decides)."""
        with self._lock:
            if self._finished or self._stop is not None:
                return False
            self._stop = why
        self.cancelled.set()
        return True

    def finish(self) -> Stop | None:
        """The handler returned: None means its outcome may be reported."""
        with self._lock:
            if self._stop is None:
                self._finished = True
            return self._stop


Handler = Callable[[JobView, JobContext], JsonValue]
"""Runs one attempt; returns the result (JSON) or raises (``NonRetryable`` for good)."""
