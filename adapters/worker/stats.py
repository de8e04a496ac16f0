"""Counters of what a worker did, for logs and tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class WorkerStats:
    claimed: int = 0
    succeeded: int = 0
    """Successful outcomes the coordinator accepted."""
    failed: int = 0
    """Failed attempts the coordinator accepted (retrying or dead-lettered)."""
    released: int = 0
    """Jobs given back on shutdown."""
    lost: int = 0
    """Leases lost (expired and reaped, or a write refused as stale): never reported."""
    cancelled: int = 0
    """Jobs cancelled while running: never reported."""
    completion_flushes: int = 0
    largest_flush: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


class StatsRecorder:
    """Counts in a plain dict (a count per job is on the hot path); a ``WorkerStats``
    is made when asked for."""

    def __init__(self) -> None:
        self._counts = {f.name: 0 for f in fields(WorkerStats)}
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] += value

    def flushed(self, size: int) -> None:
        with self._lock:
            self._counts["completion_flushes"] += 1
            self._counts["largest_flush"] = max(self._counts["largest_flush"], size)

    def snapshot(self) -> WorkerStats:
        with self._lock:
            return WorkerStats(**self._counts)
