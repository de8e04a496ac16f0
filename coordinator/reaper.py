"""The reaper: expires leases whose holder is gone and returns their jobs to the queue
(keeping the checkpoint), or to the dead letter once attempts are spent.

Moves jobs out of ``assigned``/``running`` when a lease times out, and out of every
lease held by a factory whose heartbeats stopped (which it marks ``down``). Safe to run
in several processes at once: it takes only rows nobody else holds (SKIP LOCKED), and
an expired lease leaves the lease view, so a second pass finds nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from datetime import datetime

from coordinator.context import Context
from coordinator.ports import UnitOfWork
from coordinator.propagation import propagate, settle
from coordinator.service_loop import ServiceConfig, run_loop
from domain.errors import LeaseNotExpired
from domain.job import Job, JobState


class ReaperConfig(ServiceConfig):
    pass


@dataclass(frozen=True)
class ReaperResult:
    expired: int = 0
    requeued: int = 0
    blocked: int = 0
    dead_lettered: int = 0
    factories_down: int = 0

    def __add__(self, other: ReaperResult) -> ReaperResult:
        return ReaperResult(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


class Reaper:
    def __init__(self, ctx: Context, config: ReaperConfig | None = None):
        self.ctx = ctx
        self.config = config or ReaperConfig()

    def run_once(self) -> ReaperResult:
        total = ReaperResult()
        for step in (self._silent_factories, self._expired_leases):
            while True:
                result, taken = self.ctx.transact(step)
                total += result
                if taken < self.config.batch_size:
                    break
        return total

    def run(self, stop: threading.Event) -> None:
        run_loop("reaper", self.run_once, self.config, stop, self.ctx.random)

    def _silent_factories(self, uow: UnitOfWork) -> tuple[ReaperResult, int]:
        now = self.ctx.clock.now()
        result = ReaperResult()
        factories = uow.lock_silent_factories(now, self.config.batch_size)
        for factory in factories:
            if not factory.is_silent(now):
                continue
            factory.mark_down(now)
            uow.add(factory)
            result += ReaperResult(factories_down=1)
            for job in uow.lock_jobs_leased_by(factory.name):
                result += self._expire(uow, job, "factory_down", now)
        return result, len(factories)

    def _expired_leases(self, uow: UnitOfWork) -> tuple[ReaperResult, int]:
        now = self.ctx.clock.now()
        jobs = uow.lock_expired_leases(now, self.config.batch_size)
        result = ReaperResult()
        for job in jobs:
            result += self._expire(uow, job, "lease_timeout", now)
        return result, len(jobs)

    def _expire(self, uow: UnitOfWork, job: Job, reason: str, now: datetime) -> ReaperResult:
        try:
            job.expire_lease(reason, now)
        except LeaseNotExpired:
            return ReaperResult()  # renewed after we looked: not ours to reap
        uow.add(job)
        settle(uow, job, now)
        propagate(uow, [job], now)
        return ReaperResult(
            expired=1,
            requeued=int(job.state is JobState.QUEUED),
            blocked=int(job.state is JobState.BLOCKED),
            dead_lettered=int(job.state is JobState.DEAD_LETTER),
        )
