"""``Fleet``: the one application service the CLI, the HTTP API and MCP drive.

Each method takes the caller's ``Identity`` first; the work is done by the
single-purpose services it holds (submission, claiming, reporting...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from coordinator.admission import Admission
from coordinator.claiming import Claiming, ClaimRequest
from coordinator.context import Context
from coordinator.factories import Factories, Profiles
from coordinator.identity import Identity
from coordinator.operations import Operations
from coordinator.ports import UnitOfWork
from coordinator.projection_admin import ProjectionAdmin, VerifyReport
from coordinator.queries import Queries
from coordinator.quotas import Quotas, TenantQuotas
from coordinator.reaper import Reaper, ReaperConfig
from coordinator.reporting import Completion, Reporting
from coordinator.scheduler import Scheduler, SchedulerConfig
from coordinator.submission import Submission
from coordinator.views import (
    ClaimedJob,
    FactoryView,
    HistoryEntry,
    ItemResult,
    JobPage,
    JobView,
    QuotaView,
    RenewResult,
    RunView,
    SubmitResult,
)
from domain.factory import FactoryReport
from domain.job import JobSpec
from domain.job.spec import Artifact, ErrorInfo, RunInsights
from domain.profile import ProfileSpec


class Fleet:
    def __init__(
        self,
        ctx: Context,
        reaper: ReaperConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ):
        self.ctx = ctx
        self.quotas = Quotas(ctx)
        # One cache of who has quotas, shared, so set_quotas refreshes it for everyone.
        self.submission = Submission(ctx, Admission(ctx, self.quotas.cache))
        self.claiming = Claiming(ctx, self.quotas.cache)
        self.reporting = Reporting(ctx)
        self.operations = Operations(ctx)
        self.queries = Queries(ctx)
        self.factories = Factories(ctx)
        self.profiles = Profiles(ctx)
        self.projections = ProjectionAdmin(ctx)
        self.reaper = Reaper(ctx, reaper)
        self.scheduler = Scheduler(ctx, scheduler)

    # submitters
    def submit(self, identity: Identity, spec: JobSpec | Mapping[str, Any]) -> SubmitResult:
        return self.submission.submit(identity, spec)

    def submit_handing_over(
        self,
        identity: Identity,
        spec: JobSpec | Mapping[str, Any],
        worker: Identity,
        request: ClaimRequest,
        *,
        guess: bool = True,
    ) -> tuple[SubmitResult, list[ClaimedJob]]:
        """Submit, and claim for a worker waiting for work in the same transaction (the
        new job among its candidates; ``Claiming.offer_to``): (the submit's result, what
        the worker claimed). ``guess=False``: the claim reads before it decides (after a
        ``GuessMissed`` elsewhere)."""
        return self.submission.submit_offering(
            identity, spec, self.claiming.offer_to(worker, request, guess=guess)
        )

    def hand_over_unit(
        self,
        identity: Identity,
        spec: JobSpec | Mapping[str, Any],
        worker: Identity,
        request: ClaimRequest,
    ) -> Callable[[UnitOfWork], tuple[SubmitResult, list[ClaimedJob]]] | None:
        """``submit_handing_over``'s unit of work, for a caller that runs it itself
        without waiting for the store before the commit (``Store.loop_commits``). None
        when that cannot be known now (the quota cache due for a reload, the tenant's
        quotas to be read inside it). The unit of work may still raise ``WouldRead``
        (its claim must read first), ``GuessMissed``, ``Conflict`` or ``Unavailable``:
        then nothing was written and the caller calls ``submit_handing_over`` (with
        ``guess=False`` after a ``GuessMissed``), which retries."""
        quotas = self.quotas.cache.loaded()
        if quotas is None:
            return None
        offer = self.claiming.offer_to(worker, request, quotas=quotas)
        return self.submission.offering_unit(identity, spec, offer, quotas)

    def submit_many(
        self, identity: Identity, specs: Sequence[JobSpec | Mapping[str, Any]]
    ) -> list[ItemResult]:
        return self.submission.submit_many(identity, specs)

    def cancel(self, identity: Identity, job_id: UUID, reason: str = "cancelled") -> JobView:
        return self.operations.cancel(identity, job_id, reason)

    def requeue(self, identity: Identity, job_id: UUID) -> JobView:
        return self.operations.requeue(identity, job_id)

    def register_profile(self, identity: Identity, spec: ProfileSpec | Mapping[str, Any]) -> dict[str, Any]:
        return self.profiles.register(identity, spec)

    # workers
    def claim(self, identity: Identity, request: ClaimRequest) -> list[ClaimedJob]:
        return self.claiming.claim(identity, request)

    def heartbeat(self, identity: Identity, report: FactoryReport | Mapping[str, Any]) -> FactoryView:
        return self.factories.heartbeat(identity, report)

    def renew(
        self, identity: Identity, job_id: UUID, epoch: int, lease_seconds: float | None = None
    ) -> RenewResult:
        return self.reporting.renew(identity, job_id, epoch, lease_seconds)

    def release(
        self, identity: Identity, job_id: UUID, epoch: int, reason: str = "released by worker"
    ) -> None:
        self.reporting.release(identity, job_id, epoch, reason)

    def start(self, identity: Identity, job_id: UUID, epoch: int) -> None:
        self.reporting.start(identity, job_id, epoch)

    def report_phase(self, identity: Identity, job_id: UUID, epoch: int, phase: str) -> None:
        self.reporting.report_phase(identity, job_id, epoch, phase)

    def checkpoint(self, identity: Identity, job_id: UUID, epoch: int, checkpoint: Any) -> None:
        self.reporting.checkpoint(identity, job_id, epoch, checkpoint)

    def report_insights(self, identity: Identity, job_id: UUID, epoch: int, insights: RunInsights) -> None:
        self.reporting.report_insights(identity, job_id, epoch, insights)

    def record_artifact(self, identity: Identity, job_id: UUID, epoch: int, artifact: Artifact) -> None:
        self.reporting.record_artifact(identity, job_id, epoch, artifact)

    def succeed(
        self,
        identity: Identity,
        job_id: UUID,
        epoch: int,
        result: Any = None,
        insights: RunInsights | None = None,
    ) -> None:
        self.reporting.succeed(identity, job_id, epoch, result, insights)

    def fail(
        self,
        identity: Identity,
        job_id: UUID,
        epoch: int,
        error: ErrorInfo,
        insights: RunInsights | None = None,
    ) -> None:
        self.reporting.fail(identity, job_id, epoch, error, insights)

    def complete(self, identity: Identity, completions: Sequence[Completion]) -> list[ItemResult]:
        return self.reporting.complete(identity, completions)

    # readers
    def get(self, identity: Identity, job_id: UUID) -> JobView:
        return self.queries.get(identity, job_id)

    def list_jobs(self, identity: Identity, **filters: Any) -> JobPage:
        return self.queries.list_jobs(identity, **filters)

    def history(self, identity: Identity, job_id: UUID) -> list[HistoryEntry]:
        return self.queries.history(identity, job_id)

    def state_at(self, identity: Identity, job_id: UUID, version: int) -> JobView:
        return self.queries.state_at(identity, job_id, version)

    def runs(self, identity: Identity, job_id: UUID) -> list[RunView]:
        return self.queries.runs(identity, job_id)

    def list_factories(self, identity: Identity) -> list[FactoryView]:
        return self.factories.list_factories(identity)

    # quotas
    def set_quotas(
        self, identity: Identity, tenant: str, quotas: TenantQuotas | Mapping[str, Any]
    ) -> QuotaView:
        """Admin: replace the tenant's quotas (None = unlimited); recorded as an event."""
        return self.quotas.set(identity, tenant, quotas)

    def get_quotas(self, identity: Identity, tenant: str) -> QuotaView:
        return self.quotas.get(identity, tenant)

    # operators
    def verify_projections(self, identity: Identity) -> VerifyReport:
        return self.projections.verify(identity)

    def rebuild_projections(self, identity: Identity) -> dict[str, int]:
        return self.projections.rebuild(identity)

    def close(self) -> None:
        self.ctx.store.close()
