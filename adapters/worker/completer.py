"""The completer: batches finished attempts into one ``complete()`` call (River's
batched completer). Batches go at most one per ``completion_flush_ms``: an outcome
after a quiet spell is sent at once, the ones that follow within the flush time gather
into the next batch (sooner if it fills up), and one transaction carries them all."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from adapters.worker.config import WorkerConfig
from adapters.worker.port import FleetPort
from adapters.worker.stats import StatsRecorder
from coordinator.errors import Conflict, Unavailable
from coordinator.reporting import Completion
from domain.errors import DomainError

log = logging.getLogger("fleetlog.worker.completer")

FLUSH_ATTEMPTS = 6
"""A batch the store keeps refusing as busy is given up after this many tries (about
6 s); its leases then expire and the jobs run again."""


class Completer:
    def __init__(self, port: FleetPort, config: WorkerConfig, stats: StatsRecorder):
        self._port = port
        self._flush_seconds = config.completion_flush_ms / 1000
        self._batch_max = config.completion_batch_max
        self._stats = stats
        self._cond = threading.Condition()
        self._pending: list[Completion] = []
        self._closed = False
        self._last_batch = -float("inf")
        """When the coordinator answered the previous batch (monotonic seconds): a slow
        answer spaces the batches further apart, so a busy coordinator gets fewer."""

    def submit(self, completion: Completion) -> None:
        with self._cond:
            closed = self._closed
            if not closed:
                self._pending.append(completion)
                # Wake the thread only to start a batch's wait or to cut it short when
                # the batch is full: not once per outcome.
                if len(self._pending) == 1 or len(self._pending) >= self._batch_max:
                    self._cond.notify()
        if closed:
            self._flush([completion])  # the thread is gone: send it from here

    def stop(self) -> None:
        """Flush what is pending, then end ``run``. ``submit`` appends under the lock
        taken here, so every outcome submitted before the stop is flushed."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            batch, done = self._gather()
            if batch:
                self._flush(batch)
                with self._cond:
                    self._last_batch = time.monotonic()
            if done:
                return

    def _gather(self) -> tuple[list[Completion], bool]:
        """The next batch, and whether it is the last. Batches go at most one per flush
        time: an outcome after a quiet spell goes at once (nothing to wait for), one
        that comes sooner waits until the flush time since the previous batch's answer,
        gathering company up to the batch size (a full batch goes at once, and
        everything at once when stopping). Under load that is one transaction per
        flush time per worker instead of one per outcome; idle, no delay at all."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            deadline = self._last_batch + self._flush_seconds
            while len(self._pending) < self._batch_max and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = self._pending[: self._batch_max]
            del self._pending[: self._batch_max]
            return batch, self._closed and not self._pending

    def _flush(self, batch: Sequence[Completion]) -> None:
        for attempt in range(FLUSH_ATTEMPTS):
            try:
                results = self._port.complete(batch)
                break
            except (Conflict, Unavailable) as exc:
                log.warning("reporting %d outcome(s) failed, retrying: %s", len(batch), exc)
                time.sleep(min(0.1 * 2**attempt, 2.0))
            except DomainError as exc:
                log.error("the coordinator refused %d outcome(s): %s", len(batch), exc)
                return
        else:
            log.error(
                "gave up reporting %d outcome(s); their leases will expire and they run again", len(batch)
            )
            return
        self._stats.flushed(len(batch))
        for completion, result in zip(batch, results, strict=True):
            if result.ok:
                self._stats.add(**{completion.outcome: 1})
            elif result.error is not None and result.error.code == "stale-epoch":
                self._stats.add(lost=1)
                log.warning(
                    "job %s: outcome refused, the lease (epoch %d) was lost: %s",
                    completion.job_id,
                    completion.epoch,
                    result.error.message,
                )
            else:
                log.error("job %s: outcome refused: %s", completion.job_id, result.error)
