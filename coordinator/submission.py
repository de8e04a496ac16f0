"""Submitting jobs: idempotency, supersede, dependency resolution and cycle checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import ValidationError

from coordinator.admission import Added, Admission
from coordinator.claiming import Offer
from coordinator.context import Context
from coordinator.errors import GuessMissed, InvalidRequest, NotFound, validation_errors
from coordinator.identity import Identity, Role
from coordinator.ports import UnitOfWork
from coordinator.quotas import QuotaCache, TenantQuotas
from coordinator.views import ClaimedJob, ItemError, ItemResult, JobView, SubmitResult
from domain.dependencies import DependencyStatus, evaluate, find_cycle, milestone_for
from domain.errors import (
    DependencyCycle,
    DependencyFailed,
    DomainError,
    IdempotencyConflict,
    UnknownDependency,
    UnknownPhase,
)
from domain.job import Job, JobSpec, JobState
from domain.job.spec import Dependency, DependencyMode
from domain.job.states import SUPERSEDABLE

MAX_BATCH = 1000
Outcome = Literal["created", "existing", "superseded"]


def parse_spec(request: JobSpec | Mapping[str, Any]) -> JobSpec:
    if isinstance(request, JobSpec):
        return request
    try:
        return JobSpec.model_validate(request)
    except ValidationError as exc:
        raise InvalidRequest("job", validation_errors(exc)) from None


@dataclass
class _Batch:
    """Jobs created earlier in the same transaction, by idempotency key."""

    by_key: dict[str, Job] = field(default_factory=dict)


class Submission:
    def __init__(self, ctx: Context, admission: Admission | None = None):
        self.ctx = ctx
        self.admission = admission or Admission(ctx, QuotaCache(ctx.store.quota_tenants))

    def submit(self, identity: Identity, request: JobSpec | Mapping[str, Any]) -> SubmitResult:
        """Raises ``QuotaExceeded`` (nothing submitted) past the tenant's quotas."""
        return self.submit_offering(identity, request, None)[0]

    def submit_offering(
        self, identity: Identity, request: JobSpec | Mapping[str, Any], offer: Offer | None
    ) -> tuple[SubmitResult, list[ClaimedJob]]:
        """``submit``, and in the same transaction ``offer`` (a waiting worker's claim,
        ``Claiming.offer_to``) with a newly created job among its candidates: what that
        claim took. An identical resubmit offers nothing."""
        identity.require(Role.SUBMITTER, "submit")
        tenant = identity.write_tenant("submit")
        spec = parse_spec(request)

        try:
            return self.admission.transact(
                tenant, self._offering(tenant, spec, offer), lambda r: _added(r[0].outcome)
            )
        except GuessMissed:
            if offer is None:
                raise
            # The offer decided on what this process had read, and the commit found it
            # changed: nothing was written. Again, with a claim that reads first.
            return self.admission.transact(
                tenant, self._offering(tenant, spec, offer.checked()), lambda r: _added(r[0].outcome)
            )

    def _offering(
        self, tenant: str, spec: JobSpec, offer: Offer | None
    ) -> Callable[[UnitOfWork], tuple[SubmitResult, list[ClaimedJob]]]:
        def work(uow: UnitOfWork) -> tuple[SubmitResult, list[ClaimedJob]]:
            job, outcome, old = self._place(uow, tenant, spec, _Batch())
            claimed = [] if offer is None or outcome == "existing" else offer(uow, job)
            return SubmitResult(job=JobView.of(job), outcome=outcome, superseded_job_id=old), claimed

        return work

    def offering_unit(
        self,
        identity: Identity,
        request: JobSpec | Mapping[str, Any],
        offer: Offer,
        quotas: dict[str, TenantQuotas],
    ) -> Callable[[UnitOfWork], tuple[SubmitResult, list[ClaimedJob]]] | None:
        """``submit_offering``'s unit of work, for a caller that runs it where it must
        not wait for the store before the commit (``LoopCommits``), with ``quotas`` as
        loaded: None when the tenant's quotas are read inside it (the caller goes the
        ordinary way). Refuses what ``submit_offering`` refuses before any unit of work."""
        identity.require(Role.SUBMITTER, "submit")
        tenant = identity.write_tenant("submit")
        spec = parse_spec(request)
        limits = quotas.get(tenant)
        if limits is not None and limits.limits_admission():
            return None
        return self._offering(tenant, spec, offer)

    def submit_many(
        self, identity: Identity, requests: Sequence[JobSpec | Mapping[str, Any]]
    ) -> list[ItemResult]:
        """Up to 1,000 jobs in one transaction; each item succeeds or fails on its own,
        except for quotas: past them the whole batch is refused (``QuotaExceeded``) and
        none of it is submitted."""
        identity.require(Role.SUBMITTER, "submit")
        tenant = identity.write_tenant("submit")
        if len(requests) > MAX_BATCH:
            raise InvalidRequest(
                "batch", [{"loc": "jobs", "msg": f"at most {MAX_BATCH} jobs per batch", "type": "too_long"}]
            )
        specs: list[JobSpec | DomainError] = []
        for request in requests:
            try:
                specs.append(parse_spec(request))
            except InvalidRequest as exc:
                specs.append(exc)
        return self.admission.transact(
            tenant, lambda uow: self._submit_batch(uow, tenant, specs), _added_batch
        )

    def _submit_batch(
        self, uow: UnitOfWork, tenant: str, specs: list[JobSpec | DomainError]
    ) -> list[ItemResult]:
        batch = _Batch()
        results = []
        for index, spec in enumerate(specs):
            if isinstance(spec, DomainError):
                results.append(_failed(index, spec))
                continue
            try:
                job, outcome, old = self._place(uow, tenant, spec, batch)
            except DomainError as exc:
                results.append(_failed(index, exc))
            else:
                results.append(
                    ItemResult(
                        index=index,
                        ok=True,
                        job_id=job.id,
                        outcome=outcome,
                        state=str(job.state),
                        superseded_job_id=old,
                    )
                )
        return results

    # ------------------------------------------------------------------ one job

    def _place(
        self, uow: UnitOfWork, tenant: str, spec: JobSpec, batch: _Batch
    ) -> tuple[Job, Outcome, UUID | None]:
        """Find or create the job answering to this spec: (job, outcome, superseded id)."""
        now = self.ctx.clock.now()
        old = self._existing(uow, tenant, spec, batch)
        if isinstance(old, tuple):
            return old
        deps, statuses = self._resolve_deps(uow, tenant, spec)
        self._check_references(uow, tenant, spec)
        job_id = self.ctx.ids.new_id()
        if old is not None:
            self._refuse_cycles(uow, job_id, old.id, deps, spec)
        verdict = evaluate(deps, statuses)
        job = Job.submit(
            job_id=job_id,
            tenant=tenant,
            spec=spec,
            deps=deps,
            deps_met=verdict.met,
            now=now,
            supersedes=None if old is None else old.id,
        )
        uow.add(job)
        if spec.idempotency_key is not None:
            batch.by_key[spec.idempotency_key] = job
        if old is None:
            return job, "created", None
        self._supersede(uow, old, job, now)
        return job, "superseded", old.id

    def _existing(
        self, uow: UnitOfWork, tenant: str, spec: JobSpec, batch: _Batch
    ) -> tuple[Job, Outcome, None] | Job | None:
        """The identical job (as a placement), the job to supersede, or None."""
        key = spec.idempotency_key
        if key is None:
            return None
        holder = batch.by_key.get(key)
        if holder is None:
            row = uow.find_idempotent(tenant, key)
            if row is None:
                return None
            holder = uow.lock_jobs([row.job_id])[row.job_id]
        if holder.content_hash == spec.content_hash():
            return holder, "existing", None
        if holder.state not in SUPERSEDABLE:
            raise IdempotencyConflict(key=key, job_id=holder.id, state=str(holder.state))
        return holder

    def _resolve_deps(
        self, uow: UnitOfWork, tenant: str, spec: JobSpec
    ) -> tuple[tuple[Dependency, ...], dict[UUID, DependencyStatus]]:
        """Check each dependency exists in the tenant, follow supersedes to the job that
        answers today, refuse failed ones, and fill in soft milestones."""
        if not spec.deps:
            return (), {}
        statuses = uow.dependency_status(tenant, [d.job_id for d in spec.deps])
        unknown = [d.job_id for d in spec.deps if d.job_id not in statuses]
        if unknown:
            raise UnknownDependency(unknown)
        resolved: dict[UUID, Dependency] = {}
        for dep in spec.deps:
            status = _follow(uow, tenant, statuses[dep.job_id], statuses)
            if status.state in (JobState.CANCELLED, JobState.DEAD_LETTER):
                raise DependencyFailed(status.job_id, str(status.state))
            if (
                dep.mode is DependencyMode.SOFT
                and dep.milestone is not None
                and dep.milestone not in status.phases
            ):
                raise UnknownPhase(status.job_id, dep.milestone, list(status.phases))
            target = dep.model_copy(update={"job_id": status.job_id})
            resolved.setdefault(
                status.job_id, target.model_copy(update={"milestone": milestone_for(target, status)})
            )
        return tuple(resolved.values()), statuses

    def _check_references(self, uow: UnitOfWork, tenant: str, spec: JobSpec) -> None:
        if spec.parent_id is not None and not uow.dependency_status(tenant, [spec.parent_id]):
            raise NotFound("parent job", spec.parent_id)
        profile = spec.profile
        if profile is not None and uow.get_profile(tenant, profile.name, profile.version) is None:
            raise NotFound("profile", f"{profile.name} v{profile.version}")

    def _refuse_cycles(
        self, uow: UnitOfWork, new_id: UUID, old_id: UUID, deps: tuple[Dependency, ...], spec: JobSpec
    ) -> None:
        """Superseding moves the old job's dependents onto the new one, so the new job's
        dependencies must not lead back to them (or to the job it replaces)."""

        def edges_of(nodes: Any) -> dict[UUID, list[UUID]]:
            edges = uow.dependencies_of([n for n in nodes if n != new_id])
            edges = {n: [new_id if d == old_id else d for d in targets] for n, targets in edges.items()}
            if new_id in nodes:
                edges[new_id] = [new_id if d.job_id == old_id else d.job_id for d in deps]
            return edges

        cycle = find_cycle(new_id, edges_of)
        if cycle is not None:
            label = f"new job (key {spec.idempotency_key})"
            raise DependencyCycle([label if n == new_id else str(n) for n in cycle])

    def _supersede(self, uow: UnitOfWork, old: Job, new: Job, now: datetime) -> None:
        old.supersede(new.id, now)
        uow.add(old)
        dependents = uow.lock_jobs(uow.dependents_of([old.id], blocked_only=False))
        for dependent in dependents.values():
            dependent.replace_dependency(old.id, new.id, now)
            uow.add(dependent)


def _follow(
    uow: UnitOfWork, tenant: str, status: DependencyStatus, seen: dict[UUID, DependencyStatus]
) -> DependencyStatus:
    """A dependency on a superseded job means its replacement."""
    hops = 0
    while status.state is JobState.SUPERSEDED and status.superseded_by is not None and hops < 100:
        successor = status.superseded_by
        if successor not in seen:
            seen.update(uow.dependency_status(tenant, [successor]))
        status = seen[successor]
        hops += 1
    return status


def _added(outcome: Outcome | None) -> Added:
    """A created job adds a waiting job; a supersede creates one but replaces a waiting
    one; an identical resubmit adds nothing."""
    if outcome == "created":
        return Added(waiting=1, created=1)
    if outcome == "superseded":
        return Added(waiting=0, created=1)
    return Added(waiting=0, created=0)


def _added_batch(results: list[ItemResult]) -> Added:
    each = [_added(r.outcome) for r in results if r.ok]
    return Added(waiting=sum(a.waiting for a in each), created=sum(a.created for a in each))


def _failed(index: int, exc: DomainError) -> ItemResult:
    return ItemResult(
        index=index,
        ok=False,
        error=ItemError(code=exc.code, message=exc.message, details=exc.to_dict()),
    )
