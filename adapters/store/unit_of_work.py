"""The unit of work shared by both backends: an identity map over locked aggregates,
restored from their view-row snapshots, whose pending events and view changes are
written together at commit."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent

from adapters.store import codecs
from adapters.store.codecs import Values
from adapters.store.spec_cache import SpecCache
from coordinator.ports import AdmissionContext, ClaimContext, ClaimFilter, InFlight
from domain.dependencies import DependencyStatus
from domain.factory import Factory, FactorySnapshot
from domain.job import Job, JobSnapshot
from domain.job.states import JobState
from domain.limits import STORED
from domain.profile import Profile
from domain.tenant import Tenant, TenantSnapshot
from projections.changes import ViewChanges
from projections.factory_rows import ProfileRow, factory_row, profile_row
from projections.job_rows import IdempotencyRow, JobParts, job_parts
from projections.tenant_rows import tenant_row


class Cursor(Protocol):
    """A backend's cursor inside one transaction, speaking named queries."""

    values: Values

    def fetch(self, query: str, **params: Any) -> list[Any]: ...

    def fetch_many(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[list[Any]]: ...

    def execute(self, query: str, **params: Any) -> None: ...

    def guard(self, query: str, **params: Any) -> None:
        """Run a check that must pass for the unit of work to commit (``GuessMissed``
        otherwise): queued with the commit where statements are batched."""
        ...


@dataclass(frozen=True, slots=True)
class _Prefetched:
    filter: ClaimFilter
    tenant: str
    limit: int
    rows: list[Any]
    """Locked rows, best first; restored into jobs only when a claim takes them."""


class SqlUnitOfWork:
    """Implements ``coordinator.ports.UnitOfWork`` over a backend cursor."""

    def __init__(self, cursor: Cursor, specs: SpecCache):
        self._db = cursor
        self._v = cursor.values
        self._specs = specs
        self._jobs: dict[UUID, Job] = {}
        self._before: dict[UUID, JobParts | None] = {}
        self._factories: dict[str, Factory] = {}
        self._tenants: dict[str, Tenant | None] = {}
        """Tenants looked up (and locked) by name; None: no such tenant yet."""
        self._order: list[Any] = []
        self._blocked_dependents: dict[UUID, set[UUID]] = {}
        """Blocked dependents per dependency, as read after the dependency was locked."""
        self._prefetched: _Prefetched | None = None
        """Jobs a claim context locked ahead, for the claim's ``lock_claimable``."""

    # ------------------------------------------------------------------ jobs

    def _restore(self, rows: Sequence[Any]) -> list[Job]:
        jobs = []
        for row in rows:
            job_id = self._v.uuid(row["job_id"])
            job = self._jobs.get(job_id)
            if job is None:
                job = decode_job(row, self._v, self._specs)
                self._track(job, job_parts(job))
            jobs.append(job)
        return jobs

    def _track(self, job: Job, before: JobParts | None) -> None:
        self._jobs[job.id] = job
        self._before[job.id] = before
        self._order.append(job)

    def lock_jobs(self, ids: Collection[UUID]) -> dict[UUID, Job]:
        missing = sorted(i for i in ids if i not in self._jobs)
        if missing:
            # In the same round trip, the blocked jobs waiting on these: whatever this unit
            # of work does to them, it is what dependency propagation asks next. Read after
            # the locks are taken, so no dependent committed before them is missed.
            locked, waiting = self._db.fetch_many(
                [("lock_jobs", {"ids": missing}), ("blocked_dependents_of", {"ids": missing})]
            )
            self._restore(locked)
            self._remember_blocked_dependents(missing, waiting)
        return {i: self._jobs[i] for i in ids if i in self._jobs}

    def _remember_blocked_dependents(self, ids: Sequence[UUID], rows: Sequence[Any]) -> None:
        for job_id in ids:
            self._blocked_dependents.setdefault(job_id, set())
        for row in rows:
            dependency = self._v.uuid(row["depends_on"])
            self._blocked_dependents.setdefault(dependency, set()).add(self._v.uuid(row["job_id"]))

    def dependency_status(self, tenant: str, ids: Collection[UUID]) -> dict[UUID, DependencyStatus]:
        out: dict[UUID, DependencyStatus] = {}
        missing = []
        for job_id in ids:
            job = self._jobs.get(job_id)
            if job is None:
                missing.append(job_id)
            elif job.tenant == tenant:
                out[job_id] = DependencyStatus(
                    job_id, job.state, job.phase, job.spec.phases, job.superseded_by
                )
        if missing:
            for row in self._db.fetch("dependency_status", tenant=tenant, ids=sorted(missing)):
                job_id = self._v.uuid(row["job_id"])
                phases = row["phases"]
                out[job_id] = DependencyStatus(
                    job_id=job_id,
                    state=JobState(row["state"]),
                    phase=row["phase"],
                    phases=tuple(json.loads(phases)) if phases else (),
                    superseded_by=None if row["superseded_by"] is None else UUID(str(row["superseded_by"])),
                )
        return out

    def dependencies_of(self, ids: Collection[UUID]) -> dict[UUID, list[UUID]]:
        out: dict[UUID, list[UUID]] = {}
        for row in self._db.fetch("dependencies_of", ids=list(ids)):
            out.setdefault(self._v.uuid(row["job_id"]), []).append(self._v.uuid(row["depends_on"]))
        for job_id in ids:
            if job_id in self._jobs:
                out[job_id] = [d.job_id for d in self._jobs[job_id].deps]
        return out

    def dependents_of(self, ids: Collection[UUID], *, blocked_only: bool) -> list[UUID]:
        if not blocked_only:
            return list(
                dict.fromkeys(
                    self._v.uuid(r["job_id"]) for r in self._db.fetch("dependents_of", ids=list(ids))
                )
            )
        unknown = sorted(i for i in ids if i not in self._blocked_dependents)
        if unknown:
            self._remember_blocked_dependents(unknown, self._db.fetch("blocked_dependents_of", ids=unknown))
        found = {d for i in ids for d in self._blocked_dependents[i]}
        # Jobs this unit of work blocked are blocked only in memory until it commits: the
        # view rows a query reads still show their old state.
        found |= {
            job.id
            for job in self._jobs.values()
            if job.state is JobState.BLOCKED and any(d.job_id in ids for d in job.deps)
        }
        return sorted(found)

    def find_idempotent(self, tenant: str, key: str) -> IdempotencyRow | None:
        rows = self._db.fetch("find_idempotent", tenant=tenant, key=key)
        if not rows:
            return None
        r = rows[0]
        return IdempotencyRow(r["tenant"], r["key"], self._v.uuid(r["job_id"]), r["content_hash"])

    def claim_context(
        self,
        factory_name: str,
        f: ClaimFilter,
        prefetch: tuple[str, int] | None = None,
        capped: Sequence[str] = (),
    ) -> ClaimContext:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("lock_factory", {"name": factory_name}),
            ("leases_held", {"name": factory_name}),
        ]
        one_tenant = f.tenants is not None and len(f.tenants) == 1
        if capped:
            # The gate first, the count as a statement of its own after it (its snapshot
            # then sees every lease the gate's previous holder committed); both before the
            # prefetch's job locks, so a claim never holds jobs while it waits at a gate.
            if one_tenant and len(capped) == 1:
                calls.append(("gate_tenant_claims", {"tenant": capped[0]}))
            else:
                calls.append(("try_gate_tenant_claims", {"tenants": list(capped)}))
            calls.append(("tenants_in_flight", {"tenants": list(capped)}))
        if not one_tenant:
            calls.append(("tenants_with_work", self._filter_params(f)))
        if prefetch is not None:
            calls.append(self._lock_tenant_call(f, prefetch[0], prefetch[1], ()))
        answers = self._db.fetch_many(calls)
        factories = self._restore_factories(answers[0])
        at = 2
        gated: dict[str, InFlight | None] = {}
        if capped:
            gated = self._gated(capped, answers[at], answers[at + 1])
            at += 2
        tenants = list(f.tenants or ()) if one_tenant else [r["tenant"] for r in answers[at]]
        if prefetch is not None:
            self._prefetched = _Prefetched(f, prefetch[0], prefetch[1], list(answers[-1]))
        return ClaimContext(factories[0] if factories else None, int(answers[1][0]["n"]), tenants, gated)

    def _gated(
        self, capped: Sequence[str], gates: Sequence[Any], counts: Sequence[Any]
    ) -> dict[str, InFlight | None]:
        locked = {r["tenant"]: self._v.boolean(r["locked"]) for r in gates}
        found = {r["tenant"]: InFlight(r["max_in_flight"], int(r["in_flight"])) for r in counts}
        # A tenant without a row (its quotas gone since the cache was filled) is uncapped.
        return {t: found.get(t, InFlight(None, 0)) if locked.get(t) else None for t in capped}

    def guard_hand_over(self, factory_name: str, f: ClaimFilter, factory_caps: Sequence[str] | None) -> None:
        caps = None if factory_caps is None else list(factory_caps)
        self._db.guard("guard_hand_over", name=factory_name, factory_caps=caps, **self._filter_params(f))

    def lock_claimable(
        self, f: ClaimFilter, quotas: Sequence[tuple[str | None, int]], exclude: Collection[UUID]
    ) -> list[list[Job]]:
        skip = set(exclude) | set(self._jobs)
        answers: list[list[Any] | None] = [self._from_prefetch(f, q, skip) for q in quotas]
        calls = []
        for (tenant, limit), answer in zip(quotas, answers, strict=True):
            if answer is not None:
                continue
            if tenant is None:
                base = {**self._filter_params(f), "exclude": list(skip)}
                calls.append(("lock_claimable_any", {**base, "limit": limit}))
            else:
                calls.append(self._lock_tenant_call(f, tenant, limit, skip))
        fetched = iter(self._db.fetch_many(calls))
        return [self._restore(next(fetched) if rows is None else rows) for rows in answers]

    def _lock_tenant_call(
        self, f: ClaimFilter, tenant: str, limit: int, exclude: Collection[UUID]
    ) -> tuple[str, dict[str, Any]]:
        params = {k: v for k, v in self._filter_params(f).items() if k != "tenants"}
        return "lock_claimable_tenant", {**params, "tenant": tenant, "limit": limit, "exclude": list(exclude)}

    def _from_prefetch(
        self, f: ClaimFilter, quota: tuple[str | None, int], skip: set[UUID]
    ) -> list[Any] | None:
        """The rows the prefetch already locked that answer ``quota`` exactly as its own
        query would (the best ``limit`` eligible jobs of the tenant, not in ``skip``);
        None when the prefetch cannot tell."""
        got = self._prefetched
        tenant, limit = quota
        if got is None or got.filter is not f or tenant != got.tenant:
            return None
        rows = [r for r in got.rows if self._v.uuid(r["job_id"]) not in skip]
        if len(rows) >= limit:
            return rows[:limit]
        # Fewer than asked: the answer only if the prefetch saw the tenant's whole
        # eligible list (it came back short of its own limit).
        return rows if len(got.rows) < got.limit else None

    @staticmethod
    def _filter_params(f: ClaimFilter) -> dict[str, Any]:
        return {"now": f.now, "caps": list(f.capabilities), "tenants": f.tenants, "queues": f.queues}

    def lock_expired_leases(self, now: datetime, limit: int) -> list[Job]:
        return self._restore(self._db.fetch("lock_expired_leases", now=now, limit=limit))

    def lock_due_jobs(self, now: datetime, limit: int) -> list[Job]:
        return self._restore(self._db.fetch("lock_due_jobs", now=now, limit=limit))

    def lock_jobs_leased_by(self, factory_name: str) -> list[Job]:
        return self._restore(self._db.fetch("lock_jobs_leased_by", name=factory_name))

    # ------------------------------------------------------------- factories

    def _restore_factories(self, rows: Sequence[Any]) -> list[Factory]:
        out = []
        for row in rows:
            name = row["factory_id"]
            factory = self._factories.get(name)
            if factory is None:
                factory = Factory.restore(
                    row["version"], FactorySnapshot.model_validate_json(row["snapshot"], context=STORED)
                )
                self._factories[name] = factory
                self._order.append(factory)
            out.append(factory)
        return out

    def lock_factory(self, name: str) -> Factory | None:
        if name in self._factories:
            return self._factories[name]
        found = self._restore_factories(self._db.fetch("lock_factory", name=name))
        return found[0] if found else None

    def lock_silent_factories(self, now: datetime, limit: int) -> list[Factory]:
        return self._restore_factories(self._db.fetch("lock_silent_factories", now=now, limit=limit))

    def leases_held(self, factory_name: str) -> int:
        return int(self._db.fetch("leases_held", name=factory_name)[0]["n"])

    # -------------------------------------------------------------- profiles

    def get_profile(self, tenant: str, name: str, version: int) -> ProfileRow | None:
        rows = self._db.fetch("get_profile", tenant=tenant, name=name, version=version)
        return codecs.profile_row(rows[0], self._v) if rows else None

    # --------------------------------------------------------------- tenants

    def lock_tenant(self, name: str) -> Tenant | None:
        if name not in self._tenants:
            self._tenants[name] = self._restore_tenant(self._db.fetch("lock_tenant", tenant=name))
        return self._tenants[name]

    def _restore_tenant(self, rows: Sequence[Any]) -> Tenant | None:
        if not rows:
            return None
        snapshot = TenantSnapshot.model_validate_json(rows[0]["snapshot"], context=STORED)
        tenant = Tenant.restore(rows[0]["version"], snapshot)
        self._order.append(tenant)
        return tenant

    def admission_context(self, tenant: str, *, waiting: bool, since: datetime | None) -> AdmissionContext:
        calls: list[tuple[str, dict[str, Any]]] = []
        if tenant not in self._tenants:
            calls.append(("lock_tenant", {"tenant": tenant}))
        if waiting:
            calls.append(("count_waiting_jobs", {"tenant": tenant}))
        if since is not None:
            calls.append(("count_jobs_since", {"tenant": tenant, "since": since}))
        answers = iter(self._db.fetch_many(calls))
        if tenant not in self._tenants:
            self._tenants[tenant] = self._restore_tenant(next(answers))
        counted = int(next(answers)[0]["n"]) if waiting else None
        created = int(next(answers)[0]["n"]) if since is not None else None
        return AdmissionContext(self._tenants[tenant], counted, created)

    def nth_job_since(self, tenant: str, since: datetime, offset: int) -> datetime | None:
        rows = self._db.fetch("nth_job_since", tenant=tenant, since=since, offset=offset)
        return self._v.ts(rows[0]["created_at"]) if rows else None

    # ---------------------------------------------------------------- commit

    def add(self, *aggregates: Any) -> None:
        for agg in aggregates:
            if isinstance(agg, Job):
                if agg.id not in self._jobs:
                    self._track(agg, None)
            elif isinstance(agg, Factory):
                if agg.name not in self._factories:
                    self._factories[agg.name] = agg
                    self._order.append(agg)
            elif isinstance(agg, Tenant):
                if self._tenants.get(agg.name) is not agg:
                    self._tenants[agg.name] = agg
                    self._order.append(agg)
            elif agg not in self._order:
                self._order.append(agg)

    def prepare(self, mapper: Mapper[UUID]) -> tuple[list[StoredEvent], ViewChanges]:
        """Collect pending events in registration order and the view rows they change."""
        events: list[Any] = []
        changes = ViewChanges()
        for agg in self._order:
            pending = agg.collect_events()
            if not pending:
                continue
            events.extend(pending)
            if isinstance(agg, Job):
                changes.add_job(self._before[agg.id], agg)
                if self._before[agg.id] is None:
                    self._specs.put(agg.id, agg.spec)
            elif isinstance(agg, Factory):
                changes.factories_upsert.append(factory_row(agg))
            elif isinstance(agg, Profile):
                changes.profiles_insert.append(profile_row(agg))
            elif isinstance(agg, Tenant):
                changes.tenants_upsert.append(tenant_row(agg))
        return [mapper.to_stored_event(e) for e in events], changes


def decode_job(row: Any, values: Values, specs: SpecCache) -> Job:
    job_id = values.uuid(row["job_id"])
    snapshot = JobSnapshot.model_validate_json(row["snapshot"], context=STORED)
    return Job.restore(job_id, row["version"], specs.get(job_id, row["spec"]), snapshot)
