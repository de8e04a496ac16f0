"""Claiming work: atomic, batched, by priority then age, within capabilities, seat
limits and tenants' ``max_in_flight``, round-robin across tenants."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from threading import Lock
from typing import Annotated, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from coordinator.context import Context
from coordinator.errors import FactoryDown
from coordinator.identity import Identity, Role
from coordinator.ports import ClaimFilter, InFlight, UnitOfWork
from coordinator.quotas import QuotaCache, TenantQuotas, capped_in
from coordinator.views import ClaimedJob
from domain.factory import Factory, FactoryReport, Health
from domain.job import Job, JobState
from domain.job.spec import MAX_CAPABILITIES, Name

MAX_CLAIM = 1000


class ClaimRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    factory_id: Name
    capabilities: tuple[Name, ...] | None = Field(default=None, max_length=MAX_CAPABILITIES)
    """What this claim can run; None: the factory's registered capabilities."""
    max_jobs: Annotated[int, Field(ge=1, le=MAX_CLAIM)] = 1
    lease_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = None
    """None: each job's own lease length."""
    queues: tuple[Name, ...] | None = None
    """None: every queue."""
    start: bool = False
    """The claimer starts the jobs at once: record ``JobStarted`` in the claim's own
    transaction (``running`` straight away) instead of one start write per job."""


SEEN_FACTORIES = 4096
"""Factories whose last claim here is remembered for guessing hand-overs (the least
recently claimed for are forgotten first)."""


class Offer(Protocol):
    """Claims for one waiting worker inside another unit of work, with a job that unit of
    work just made claimable among the candidates (see ``Claiming.offer_to``)."""

    def __call__(self, uow: UnitOfWork, job: Job) -> list[ClaimedJob]: ...

    def checked(self) -> Offer:
        """The same claim, reading before it decides: what to run again after the unit
        of work raised ``GuessMissed``."""
        ...


def admits(f: ClaimFilter, job: Job) -> bool:
    """The claim queries' eligibility test, for a job not yet in the views: queued and
    available now, within the filter's tenants and queues, needing no capability the
    filter lacks."""
    return (
        job.state is JobState.QUEUED
        and (job.available_at or job.created_on) <= f.now
        and (f.tenants is None or job.tenant in f.tenants)
        and (f.queues is None or job.spec.queue in f.queues)
        and set(job.spec.capabilities) <= set(f.capabilities)
    )


def rotate(tenants: list[str], after: str | None) -> list[str]:
    """Tenants in round-robin order, starting with the first one after ``after``."""
    if after is None:
        return tenants
    start = next((i for i, t in enumerate(tenants) if t > after), 0)
    return tenants[start:] + tenants[:start]


def budgets(capped: dict[str, InFlight | None]) -> dict[str, int]:
    """How many more jobs each capped tenant may be leased by this claim: none while
    another claim holds its gate, else ``max_in_flight`` minus what it holds."""
    out = {}
    for tenant, held in capped.items():
        if held is None:
            out[tenant] = 0
        elif held.limit is not None:
            out[tenant] = max(0, held.limit - held.leased)
    return out


def best_first(jobs: list[Job]) -> list[Job]:
    """The claim order of the queue view: priority, then when it became available."""
    return sorted(jobs, key=lambda j: (j.spec.priority, j.available_at or j.created_on, j.id))


def interleave(per_tenant: dict[str, list[Job]], order: list[str], limit: int) -> list[Job]:
    """Take each tenant's best job in turn, then each one's second best, and so on."""
    picked: list[Job] = []
    rank = 0
    while len(picked) < limit:
        took = False
        for tenant in order:
            jobs = per_tenant.get(tenant, [])
            if rank < len(jobs):
                picked.append(jobs[rank])
                took = True
                if len(picked) == limit:
                    break
        if not took:
            break
        rank += 1
    return picked


def _with_offered(
    jobs: list[Job], offered: Job, f: ClaimFilter, limit: int, room: dict[str, int]
) -> list[Job]:
    """The claim's pick with ``offered`` (not in the views yet) as one more candidate,
    taken if it qualifies and ranks within ``limit``; its tenant's room is respected."""
    if not admits(f, offered):
        return jobs
    left = room.get(offered.tenant)
    if left is not None and left <= sum(1 for j in jobs if j.tenant == offered.tenant):
        return jobs
    return best_first([*jobs, offered])[:limit]


class Claiming:
    def __init__(self, ctx: Context, quotas: QuotaCache | None = None):
        self.ctx = ctx
        self.quotas = quotas or QuotaCache(ctx.store.quota_tenants)
        self._after: str | None = None  # this process's round-robin position
        self._sole_tenant: str | None = None
        """The one tenant the last fleet-wide claim found work for, if it found one: the
        next claim locks that tenant's jobs ahead, with the factory (one round trip less
        when it is still the only one, and no difference otherwise)."""
        self._lock = Lock()
        self._seen: OrderedDict[str, Factory] = OrderedDict()
        """Factories as this process's last claim for each read them, while that claim
        came back short (``_guess``). Read-only once stored: a claim that reads a
        factory again stores the new object."""

    def claim(self, identity: Identity, request: ClaimRequest) -> list[ClaimedJob]:
        identity.require(Role.WORKER, "claim")
        # Outside the unit of work: a cache refresh reads the store on a connection of its own.
        capped = self.quotas.capped(identity.scope())
        return self.ctx.transact(lambda uow: self._claim(uow, identity, request, capped))

    def offer_to(
        self,
        identity: Identity,
        request: ClaimRequest,
        *,
        guess: bool = True,
        quotas: dict[str, TenantQuotas] | None = None,
    ) -> Offer:
        """A claim for a worker that is waiting for work, to run inside the unit of work
        that creates a job (a submit), with that job among the candidates: the worker
        then gets the job in the transaction that creates it (a "sync match"), with no
        wake-up and no claim transaction of its own.

        The claim is the one ``claim`` makes (factory, seats, tenants' in-flight caps,
        capabilities, queues, priority then age), so the worker takes the best jobs it
        may, the new one only if it is among them. A factory declared down claims
        nothing (the submit still commits: the job waits in the queue).

        ``guess=False``: never in one round trip (after a ``GuessMissed``). ``quotas``:
        the quotas as loaded (``QuotaCache.loaded``) when the caller must not wait for a
        reload."""
        identity.require(Role.WORKER, "claim")
        scope = identity.scope()  # the caps read outside the unit of work (see claim)
        capped = self.quotas.capped(scope) if quotas is None else capped_in(quotas, scope)
        return _HandOver(self, identity, request, capped, guess=guess)

    def _guess(
        self, uow: UnitOfWork, identity: Identity, request: ClaimRequest, capped: list[str], job: Job
    ) -> list[ClaimedJob] | None:
        """Hand-over in one round trip. The ordinary claim reads the worker's factory,
        its leases and the queue (a round trip, with the factory's row locked across it)
        before it decides. When this process's last claim for that factory came back
        short (nothing else was claimable), the claim most likely takes just the new job:
        decide that on the factory as read then, and let the commit check it
        (``UnitOfWork.guard_hand_over``: the factory still up and with the capabilities
        decided on, a seat free, nothing else claimable; a heartbeat that changes none of
        these voids no guess), all in the commit's one round trip. A wrong guess fails the
        unit of work with ``GuessMissed``, and the caller runs it again ``checked``.
        None: no guess to make here (the ordinary claim decides)."""
        factory = self._seen.get(request.factory_id)
        if factory is None or factory.health is Health.DOWN or job.tenant in capped:
            return None
        now = self.ctx.clock.now()
        caps = factory.capabilities if request.capabilities is None else request.capabilities
        factory_caps = caps if request.capabilities is None else None  # what the guard re-checks
        f = ClaimFilter(now=now, capabilities=caps, tenants=identity.scope(), queues=request.queues)
        if not admits(f, job) or factory.seats_free(0) == 0:
            return None
        uow.guard_hand_over(factory.name, f, factory_caps)
        return _lease(uow, [job], factory.name, request, now)

    def _remember(self, factory: Factory | None, short: bool) -> None:
        """After a claim that read ``factory``: a short claim (the queue had nothing more
        for it) makes its next hand-over worth guessing; a full one does not."""
        if factory is None:
            return
        with self._lock:
            if short and factory.health is not Health.DOWN:
                self._seen[factory.name] = factory
                self._seen.move_to_end(factory.name)
                while len(self._seen) > SEEN_FACTORIES:
                    self._seen.popitem(last=False)
            else:
                self._seen.pop(factory.name, None)

    def _claim(
        self,
        uow: UnitOfWork,
        identity: Identity,
        request: ClaimRequest,
        capped: list[str],
        offered: Job | None = None,
    ) -> list[ClaimedJob]:
        now = self.ctx.clock.now()
        caps = request.capabilities
        if caps is None:
            # Run what the factory registered: its row decides the filter.
            known = uow.lock_factory(request.factory_id)
            caps = () if known is None else known.capabilities
        f = ClaimFilter(now=now, capabilities=caps, tenants=identity.scope(), queues=request.queues)
        guess = self._tenant_to_prefetch(f)
        context = uow.claim_context(
            request.factory_id,
            f,
            prefetch=None if guess is None else (guess, request.max_jobs),
            capped=capped,
        )
        if f.tenants is None:
            self._sole_tenant = context.tenants[0] if len(context.tenants) == 1 else None
        factory = context.factory
        if factory is None:
            # First contact registers the factory; without a heartbeat timeout it is never
            # declared down for silence (its leases still expire on their own).
            report = FactoryReport(
                factory_id=request.factory_id, capabilities=caps, heartbeat_timeout_seconds=None
            )
            factory = Factory.register(report, now)
            uow.add(factory)
        elif factory.health is Health.DOWN:
            self._remember(factory, short=False)
            raise FactoryDown(factory.name)
        free = factory.seats_free(context.leases_held)
        limit = request.max_jobs if free is None else min(request.max_jobs, free)
        if limit <= 0:
            self._remember(factory, short=False)
            return []
        room = budgets(context.capped)
        jobs = self._select(uow, f, limit, context.tenants, room)
        self._remember(context.factory, short=len(jobs) < limit)
        if offered is not None:
            jobs = _with_offered(jobs, offered, f, limit, room)
        return _lease(uow, jobs, factory.name, request, now)

    def _tenant_to_prefetch(self, f: ClaimFilter) -> str | None:
        """Whose jobs to lock with the claim context: the filter's one tenant, or for a
        fleet-wide claim the one the last claim found alone."""
        if f.tenants is None:
            return self._sole_tenant
        return f.tenants[0] if len(f.tenants) == 1 else None

    def _select(
        self, uow: UnitOfWork, f: ClaimFilter, limit: int, tenants: list[str], room: dict[str, int]
    ) -> list[Job]:
        """Pick up to ``limit`` jobs; a tenant in ``room`` gets at most its room."""
        tenants = [t for t in tenants if room.get(t, limit) > 0]
        if not tenants:
            return []
        if len(tenants) == 1:
            return uow.lock_claimable(f, [(tenants[0], min(limit, room.get(tenants[0], limit)))], ())[0]
        with self._lock:
            order = rotate(tenants, self._after)[:limit]
            self._after = order[0]
        # Lock about a fair share per tenant (the surplus stays locked only until commit),
        # then fill any gap from whoever has work.
        share = math.ceil(limit / len(order))
        locked = uow.lock_claimable(f, [(t, min(share, room.get(t, share))) for t in order], ())
        per_tenant = dict(zip(order, locked, strict=True))
        picked = interleave(per_tenant, order, limit)
        if len(picked) < limit:
            taken = [j.id for jobs in locked for j in jobs]
            if room:
                gap = limit - len(picked)
                picked += self._fill_capped(uow, f, gap, tenants, room=room, picked=picked, taken=taken)
            else:
                picked += uow.lock_claimable(f, [(None, limit - len(picked))], taken)[0]
        return picked

    def _fill_capped(
        self,
        uow: UnitOfWork,
        f: ClaimFilter,
        gap: int,
        tenants: list[str],
        *,
        room: dict[str, int],
        picked: list[Job],
        taken: list[UUID],
    ) -> list[Job]:
        """The gap filled as without caps, but from uncapped tenants as a whole and from
        each capped tenant only up to the room it has left."""
        uncapped = tuple(t for t in tenants if t not in room)
        scoped = replace(f, tenants=uncapped)  # what the "any tenant" part may take
        asks: list[tuple[str | None, int]] = [(None, gap)] if uncapped else []
        for tenant in tenants:
            left = room.get(tenant, 0) - sum(1 for j in picked if j.tenant == tenant)
            if tenant in room and left > 0:
                asks.append((tenant, min(left, gap)))
        if not asks:
            return []
        found = [job for jobs in uow.lock_claimable(scoped, asks, taken) for job in jobs]
        return best_first(found)[:gap]


def _lease(
    uow: UnitOfWork, jobs: list[Job], factory: str, request: ClaimRequest, now: datetime
) -> list[ClaimedJob]:
    """Lease the picked jobs to ``factory`` (started at once if the request says so)."""
    for job in jobs:
        if job.state is not JobState.QUEUED:
            job.make_ready(now)  # a due scheduled or retrying job, promoted on the way
        job.grant_lease(factory, request.lease_seconds or job.spec.lease_seconds, now)
        if request.start:
            job.start(job.epoch, now)
    uow.add(*jobs)
    return [ClaimedJob.of(job) for job in jobs]


class _HandOver:
    """``Claiming.offer_to``'s offer: guessed in one round trip when it can be, else (or
    ``checked``) the ordinary claim in the submit's unit of work."""

    def __init__(
        self, claiming: Claiming, identity: Identity, request: ClaimRequest, capped: list[str], *, guess: bool
    ):
        self.claiming, self.identity, self.request, self.capped = claiming, identity, request, capped
        self.guess = guess

    def __call__(self, uow: UnitOfWork, job: Job) -> list[ClaimedJob]:
        if self.guess:
            guessed = self.claiming._guess(uow, self.identity, self.request, self.capped, job)
            if guessed is not None:
                return guessed
        try:
            return self.claiming._claim(uow, self.identity, self.request, self.capped, offered=job)
        except FactoryDown:
            return []  # raised before anything was changed: the submit goes on

    def checked(self) -> Offer:
        return _HandOver(self.claiming, self.identity, self.request, self.capped, guess=False)
