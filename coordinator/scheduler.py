"""The scheduler: moves ``scheduled`` jobs whose run-at has come, and ``failed`` jobs
whose retry time has come, to ``queued`` (or back to ``blocked`` if a dependency is no
longer met). Claims also promote due jobs without dependencies on the way, so latency
does not depend on this interval; the scheduler keeps listings truthful."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

from coordinator.context import Context
from coordinator.ports import UnitOfWork
from coordinator.propagation import settle
from coordinator.service_loop import ServiceConfig, run_loop
from domain.errors import NotDue
from domain.job import JobState


class SchedulerConfig(ServiceConfig):
    pass


@dataclass(frozen=True)
class SchedulerResult:
    promoted: int = 0
    blocked: int = 0
    dead_lettered: int = 0

    def __add__(self, other: SchedulerResult) -> SchedulerResult:
        return SchedulerResult(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


class Scheduler:
    def __init__(self, ctx: Context, config: SchedulerConfig | None = None):
        self.ctx = ctx
        self.config = config or SchedulerConfig()

    def run_once(self) -> SchedulerResult:
        total = SchedulerResult()
        while True:
            result, taken = self.ctx.transact(self._due)
            total += result
            if taken < self.config.batch_size:
                return total

    def run(self, stop: threading.Event) -> None:
        run_loop("scheduler", self.run_once, self.config, stop, self.ctx.random)

    def _due(self, uow: UnitOfWork) -> tuple[SchedulerResult, int]:
        now = self.ctx.clock.now()
        jobs = uow.lock_due_jobs(now, self.config.batch_size)
        result = SchedulerResult()
        for job in jobs:
            try:
                job.make_ready(now)
            except NotDue:
                continue
            uow.add(job)
            settle(uow, job, now)
            result += SchedulerResult(
                promoted=int(job.state is JobState.QUEUED),
                blocked=int(job.state is JobState.BLOCKED),
                dead_lettered=int(job.state is JobState.DEAD_LETTER),
            )
        return result, len(jobs)
