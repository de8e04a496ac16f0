"""Operator and submitter actions on a job: cancel, requeue."""

from __future__ import annotations

from uuid import UUID

from coordinator.context import Context
from coordinator.identity import Identity, Role
from coordinator.ports import UnitOfWork
from coordinator.propagation import propagate, settle, verdict_for
from coordinator.reporting import load_visible
from coordinator.views import JobView
from domain.job import JobState


class Operations:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def cancel(self, identity: Identity, job_id: UUID, reason: str = "cancelled") -> JobView:
        """Cancel any job that is not finished. A leased job's worker learns it on its
        next renewal; blocked dependents of the job dead-letter with the reason."""
        identity.require(Role.SUBMITTER, "cancel")

        def work(uow: UnitOfWork) -> JobView:
            now = self.ctx.clock.now()
            job = load_visible(uow, identity, job_id)
            job.cancel(reason, identity.subject, now)
            uow.add(job)
            propagate(uow, [job], now)
            return JobView.of(job)

        return self.ctx.transact(work)

    def requeue(self, identity: Identity, job_id: UUID) -> JobView:
        """Give a dead-lettered job a fresh set of attempts (refused while one of its
        dependencies has failed: requeue that one first)."""
        identity.require(Role.ADMIN, "requeue")

        def work(uow: UnitOfWork) -> JobView:
            now = self.ctx.clock.now()
            job = load_visible(uow, identity, job_id)
            failed = None
            if job.state is JobState.DEAD_LETTER and job.deps:
                verdict = verdict_for(uow, job)
                failed = None if verdict.failed is None else verdict.failed[0]
            job.requeue(identity.subject, now, failed_dependency=failed)
            uow.add(job)
            settle(uow, job, now)
            return JobView.of(job)

        return self.ctx.transact(work)
