"""Dependencies at work inside a unit of work: release or fail blocked dependents when
a job finishes, fails or reaches a phase; re-check a job's own dependencies when it
returns to the queue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from coordinator.ports import UnitOfWork
from domain.dependencies import Verdict, evaluate
from domain.job import Job, JobState
from domain.job import events as e

# A blocked dependent can only change when its dependency does one of these.
_RELEASING = (e.JobSucceeded, e.PhaseReported, e.JobDeadLettered, e.JobCancelled)


def _affects_dependents(job: Job) -> bool:
    return any(isinstance(event, _RELEASING) for event in job.pending_events)


def verdict_for(uow: UnitOfWork, job: Job) -> Verdict:
    statuses = uow.dependency_status(job.tenant, [d.job_id for d in job.deps])
    return evaluate(job.deps, statuses)


def settle(uow: UnitOfWork, job: Job, now: datetime) -> None:
    """A job just returned to ``queued``: block it again if a dependency is no longer
    met (a soft dependency lost its milestone), or dead-letter it if one failed."""
    if job.state is not JobState.QUEUED or not job.deps:
        return
    verdict = verdict_for(uow, job)
    if verdict.failed is not None:
        job.dead_letter_for_dependency(verdict.failed[0], str(verdict.failed[1]), now)
        propagate(uow, [job], now)
    elif verdict.unmet:
        job.block(verdict.unmet, now)


def propagate(uow: UnitOfWork, changed: Iterable[Job], now: datetime) -> None:
    """Release or fail the blocked dependents of ``changed`` jobs, transitively.

    Dependents are locked before they are judged; the dependencies' status is read
    after that lock, so a dependency finishing in a concurrent transaction is either
    seen here or sees this transaction's dependents when it propagates itself.
    """
    frontier = [j.id for j in changed if _affects_dependents(j)]
    while frontier:
        ids = uow.dependents_of(frontier, blocked_only=True)
        if not ids:
            return
        failed = []
        for job in sorted(uow.lock_jobs(ids).values(), key=lambda j: j.id):
            if job.state is not JobState.BLOCKED:
                continue
            verdict = verdict_for(uow, job)
            if verdict.failed is not None:
                job.dead_letter_for_dependency(verdict.failed[0], str(verdict.failed[1]), now)
                failed.append(job.id)
            elif verdict.met:
                job.unblock(now)
            uow.add(job)
        frontier = failed
