"""Handler slots: the claim loop takes one per claimed job, a handler thread gives it
back when the job is done; a worker never holds more leases than it has slots."""

from __future__ import annotations

import threading
import time

POLL_SECONDS = 0.2
"""How often a wait re-checks the stop flag (``stop()`` only sets an event, so it is
safe in a signal handler, and nobody notifies this condition on stop)."""


class Slots:
    def __init__(self, size: int):
        self.size = size
        self._busy = 0
        self._cond = threading.Condition()

    @property
    def busy(self) -> int:
        return self._busy

    def free(self) -> int:
        return self.size - self._busy

    def wait_free(self, stopping: threading.Event) -> int:
        """Block until a slot is free; the number free, or 0 once stopping."""
        with self._cond:
            while self._busy >= self.size and not stopping.is_set():
                self._cond.wait(POLL_SECONDS)
            return 0 if stopping.is_set() else self.size - self._busy

    def take(self) -> None:
        with self._cond:
            self._busy += 1

    def give(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True
