"""The renewer: one thread that renews every in-flight lease after ``renew_fraction``
of its length, and stops a job's handler (``ctx.cancelled``) when a renewal says the
job was cancelled or the lease is gone."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from uuid import UUID

from adapters.worker.config import WorkerConfig
from adapters.worker.context import JobContext, Stop
from adapters.worker.port import FleetPort
from coordinator.errors import Conflict, NotFound, Unavailable
from domain.errors import DomainError, StaleEpoch

log = logging.getLogger("fleetlog.worker.renewer")

RETRY_SECONDS = 1.0
"""After a failed renewal (store busy or unreachable), try again this soon at most."""


@dataclass
class _Lease:
    ctx: JobContext
    period: float
    due: float
    """time.monotonic() of the next renewal."""


class Renewer:
    def __init__(self, port: FleetPort, config: WorkerConfig):
        self._port = port
        self._lease_seconds = config.lease_seconds
        self._fraction = config.renew_fraction
        self._cond = threading.Condition()
        self._leases: dict[UUID, _Lease] = {}
        self._renewing: set[UUID] = set()
        self._stopped = False
        self._wake_at = -math.inf
        """When the thread's wait ends on its own (inf: it waits for a lease; -inf: it is
        not waiting). A new lease due later needs no wake-up: short jobs come and go
        without waking the thread for each."""

    def track(self, ctx: JobContext, lease_seconds: float) -> None:
        period = lease_seconds * self._fraction
        due = time.monotonic() + period
        with self._cond:
            self._leases[ctx.job_id] = _Lease(ctx, period, due)
            if due < self._wake_at:
                self._cond.notify_all()

    def untrack(self, job_id: UUID) -> None:
        """Stop renewing; once this returns, no renewal of the job is in flight or will
        be sent (a renewal landing after the outcome would be refused as stale and
        recorded as such in the job's history)."""
        with self._cond:
            self._leases.pop(job_id, None)
            while job_id in self._renewing:
                self._cond.wait()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def run(self) -> None:
        while True:
            due = self._next_due()
            if due is None:
                return
            try:
                for lease in due:
                    self._renew(lease)
            finally:
                with self._cond:
                    self._renewing.difference_update(lease.ctx.job_id for lease in due)
                    self._cond.notify_all()

    def _next_due(self) -> list[_Lease] | None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                due = [lease for lease in self._leases.values() if lease.due <= now]
                if due:
                    self._renewing.update(lease.ctx.job_id for lease in due)
                    return due
                soonest = min((lease.due for lease in self._leases.values()), default=math.inf)
                self._wake_at = soonest
                try:
                    self._cond.wait(None if soonest == math.inf else soonest - now)
                finally:
                    self._wake_at = -math.inf
            return None

    def _renew(self, lease: _Lease) -> None:
        ctx = lease.ctx
        if ctx.cancelled.is_set():
            self._forget(ctx.job_id)
            return
        try:
            result = self._port.renew(ctx.job_id, ctx.epoch, self._lease_seconds)
        except (StaleEpoch, NotFound) as exc:
            log.warning("job %s: lease epoch %d lost (%s); stopping its handler", ctx.job_id, ctx.epoch, exc)
            self._halt(ctx, Stop.LOST)
        except (Conflict, Unavailable) as exc:
            log.warning("job %s: renewal failed, retrying: %s", ctx.job_id, exc)
            lease.due = time.monotonic() + min(RETRY_SECONDS, lease.period / 2)
        except DomainError as exc:
            log.error("job %s: renewal refused (%s); treating the lease as lost", ctx.job_id, exc)
            self._halt(ctx, Stop.LOST)
        else:
            if result.cancel_requested:
                log.info("job %s was cancelled; stopping its handler", ctx.job_id)
                self._halt(ctx, Stop.CANCELLED)
            else:
                lease.due = time.monotonic() + lease.period

    def _halt(self, ctx: JobContext, why: Stop) -> None:
        ctx.halt(why)
        self._forget(ctx.job_id)

    def _forget(self, job_id: UUID) -> None:
        with self._cond:
            self._leases.pop(job_id, None)
