"""Counters of what a worker did, for logs and tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace


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
    def __init__(self) -> None:
        self._stats = WorkerStats()
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            s = self._stats
            self._stats = replace(s, **{k: getattr(s, k) + v for k, v in counts.items()})

    def flushed(self, size: int) -> None:
        with self._lock:
            s = self._stats
            self._stats = replace(
                s, completion_flushes=s.completion_flushes + 1, largest_flush=max(s.largest_flush, size)
            )

    def snapshot(self) -> WorkerStats:
        return self._stats
