"""Admission at submit: ``max_queued`` and ``submits_per_minute``.

A tenant with either quota submits under its tenant row's lock: the unit of work locks
the row first (before any job), counts, places the request's jobs, and refuses the
whole request — a batch included — if what it adds would pass a limit. The refusal
raises inside the unit of work, so nothing of the request commits; it is then counted
as an ``AdmissionRefused`` event in a unit of work of its own.

Tenants without those quotas (as ``QuotaCache`` knows them) run the plain unit of work:
no lock, no count, no extra round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from coordinator.context import Context
from coordinator.errors import QuotaExceeded
from coordinator.ports import AdmissionContext, UnitOfWork
from coordinator.quotas import WINDOW, QuotaCache
from domain.errors import DomainError
from domain.tenant import TenantQuotas

T = TypeVar("T")
log = logging.getLogger("fleetlog.admission")

QUEUE_RETRY_AFTER_SECONDS = 1.0
"""What a ``max_queued`` refusal suggests: room appears as workers claim jobs, which
Fleetlog cannot predict; a short wait and a retry is the honest advice."""


@dataclass(frozen=True)
class Added:
    """What a request adds, as admission counts it."""

    waiting: int
    """Net new jobs waiting to run (a supersede replaces a waiting job: 0)."""
    created: int
    """New jobs created (a supersede creates one); an idempotent resubmit adds nothing."""


class Admission:
    def __init__(self, ctx: Context, cache: QuotaCache):
        self.ctx = ctx
        self.cache = cache

    def transact(self, tenant: str, work: Callable[[UnitOfWork], T], added: Callable[[T], Added]) -> T:
        """Run ``work`` in a unit of work, admitted against the tenant's quotas."""
        quotas = self.cache.quotas_of(tenant)
        if quotas is None or not quotas.limits_admission():
            return self.ctx.transact(work)
        try:
            return self.ctx.transact(lambda uow: self._admit(uow, tenant, quotas, work, added))
        except QuotaExceeded as refusal:
            self._count(tenant, refusal)
            raise

    def _admit(
        self,
        uow: UnitOfWork,
        tenant: str,
        expected: TenantQuotas,
        work: Callable[[UnitOfWork], T],
        added: Callable[[T], Added],
    ) -> T:
        now = self.ctx.clock.now()
        since = now - WINDOW
        # The tenant's row is locked before anything else the request touches (lock
        # order: tenant row, then jobs), and counted after the lock is held.
        usage = uow.admission_context(
            tenant,
            waiting=expected.max_queued is not None,
            since=since if expected.submits_per_minute is not None else None,
        )
        result = work(uow)
        adds = added(result)
        if usage.tenant is None or (adds.waiting == 0 and adds.created == 0):
            return result
        quotas = usage.tenant.quotas  # what is in force now, whatever the cache said
        if (quotas.max_queued is not None and usage.waiting is None) or (
            quotas.submits_per_minute is not None and usage.created_since is None
        ):
            # Quotas changed in another process since this one's cache was filled.
            usage = uow.admission_context(
                tenant,
                waiting=quotas.max_queued is not None,
                since=since if quotas.submits_per_minute is not None else None,
            )
        refusals = self._refusals(uow, tenant, quotas, usage, adds=adds, now=now)
        if refusals:
            # The one to wait longest for: retrying sooner would only be refused again.
            raise max(refusals, key=lambda r: float(r.fields["retry_after_seconds"]))
        return result

    def _refusals(
        self,
        uow: UnitOfWork,
        tenant: str,
        quotas: TenantQuotas,
        usage: AdmissionContext,
        *,
        adds: Added,
        now: datetime,
    ) -> list[QuotaExceeded]:
        out = []
        limit, waiting = quotas.max_queued, usage.waiting
        if limit is not None and waiting is not None and adds.waiting > 0 and waiting + adds.waiting > limit:
            out.append(
                QuotaExceeded(
                    tenant, "max_queued", limit, waiting, QUEUE_RETRY_AFTER_SECONDS, requested=adds.waiting
                )
            )
        limit, created = quotas.submits_per_minute, usage.created_since
        if limit is not None and created is not None and adds.created > 0 and created + adds.created > limit:
            wait = self._window_wait(uow, tenant, now, in_window=created, adding=adds.created, limit=limit)
            out.append(
                QuotaExceeded(tenant, "submits_per_minute", limit, created, wait, requested=adds.created)
            )
        return out

    def _window_wait(
        self, uow: UnitOfWork, tenant: str, now: datetime, *, in_window: int, adding: int, limit: int
    ) -> float:
        """Seconds until enough of the window's jobs are older than 60 s to admit
        ``adding`` more: the moment the k-th oldest ages out, k = in_window + adding - limit."""
        if adding > limit:
            return WINDOW.total_seconds()  # never fits; the message says to split it
        k = in_window + adding - limit
        oldest = uow.nth_job_since(tenant, now - WINDOW, k - 1)
        if oldest is None:
            return WINDOW.total_seconds()
        return max((oldest + WINDOW - now).total_seconds(), 0.001)

    def _count(self, tenant: str, refusal: QuotaExceeded) -> None:
        """Record the refusal (its own unit of work: the refused one rolled back). A
        failure here is logged, never raised: the caller must see the refusal."""
        f = refusal.fields

        def work(uow: UnitOfWork) -> None:
            found = uow.lock_tenant(tenant)
            if found is not None:
                found.refuse_admission(
                    f["quota"],
                    limit=f["limit"],
                    current=f["current"],
                    requested=refusal.requested or 0,
                    now=self.ctx.clock.now(),
                )
                uow.add(found)

        try:
            self.ctx.transact(work)
        except DomainError as exc:  # store errors arrive translated (Unavailable, Conflict)
            log.warning("could not count a refused submit of tenant %s: %s", tenant, exc)
