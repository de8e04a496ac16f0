"""Per-tenant quotas: setting and reading them, and the per-process cache that keeps
tenants without quotas off every quota code path.

Admission at submit lives in ``admission.py``, the ``max_in_flight`` cap in
``claiming.py``; both ask ``QuotaCache`` first, so a tenant without quotas costs a
dictionary lookup and nothing else (no lock, no count, no round trip).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from coordinator.context import Context
from coordinator.errors import InvalidRequest, NotFound, validation_errors
from coordinator.identity import TENANT, Identity, Role
from coordinator.ports import UnitOfWork
from coordinator.views import QuotaUsage, QuotaView
from domain.errors import DomainError
from domain.tenant import Tenant, TenantQuotas
from projections.tenant_rows import TenantRow

__all__ = [
    "QUOTA_CACHE_TTL_SECONDS",
    "WINDOW",
    "QuotaCache",
    "QuotaUsage",
    "QuotaView",
    "Quotas",
    "TenantQuotas",
]

log = logging.getLogger("fleetlog.quotas")

QUOTA_CACHE_TTL_SECONDS = 1.0
"""How stale this process's view of who has quotas may be. ``set_quotas`` refreshes it
at once in the process that ran it; other processes follow within this time."""
WINDOW = timedelta(seconds=60)
"""The ``submits_per_minute`` window: jobs created in the last 60 s."""


class QuotaCache:
    """Which tenants have quotas, as this process last read them (at most ``ttl`` old).

    Only decides whether a tenant takes the quota path at all; the limits enforced are
    read again from the tenant's row, under its lock, inside the transaction.
    """

    def __init__(
        self,
        load: Callable[[], list[TenantRow]],
        ttl: float = QUOTA_CACHE_TTL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._load = load
        self._ttl = ttl
        self._monotonic = monotonic
        self._quotas: dict[str, TenantQuotas] | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def quotas_of(self, tenant: str) -> TenantQuotas | None:
        return self._current().get(tenant)

    def capped(self, tenants: tuple[str, ...] | None) -> list[str]:
        """The tenants among ``tenants`` (None: all) with a ``max_in_flight``, by name."""
        return capped_in(self._current(), tenants)

    def loaded(self) -> dict[str, TenantQuotas] | None:
        """Every tenant's quotas as loaded, without waiting: None when they are due for a
        reload (for a caller that must not block on the store: it goes the ordinary way,
        which reloads)."""
        quotas = self._quotas
        return quotas if quotas is not None and self._monotonic() < self._expires else None

    @property
    def ttl(self) -> float:
        return self._ttl

    def refresh(self) -> None:
        """Reload now, ahead of expiry, for a process that keeps the cache fresh in the
        background so that no request waits for a reload (``adapters/http/quota_refresh.py``).
        Skipped while another thread reloads. A failure raises the store's error (the
        caller logs the outage once, not every reload) and keeps the last answer, which
        expires as usual (a request then reloads, or fails as the store does)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._keep(self._load())
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        with self._lock:
            self._expires = 0.0

    def _current(self) -> dict[str, TenantQuotas]:
        quotas = self._quotas
        if quotas is not None and self._monotonic() < self._expires:
            return quotas
        # One thread reloads; the others carry on with what was loaded before (if any).
        if not self._lock.acquire(blocking=quotas is None):
            assert quotas is not None
            return quotas
        try:
            if self._quotas is not None and self._monotonic() < self._expires:
                return self._quotas
            return self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> dict[str, TenantQuotas]:
        try:
            rows = self._load()
        except DomainError as exc:
            if self._quotas is None:
                raise
            # The store is briefly unreachable: keep the last answer and try again on
            # the next call (whatever a submit does next would fail the same way).
            log.warning("could not refresh tenant quotas, using the previous ones: %s", exc)
            return self._quotas
        return self._keep(rows)

    def _keep(self, rows: list[TenantRow]) -> dict[str, TenantQuotas]:
        self._quotas = {row.tenant: row.quotas() for row in rows if row.quotas().any()}
        self._expires = self._monotonic() + self._ttl
        return self._quotas


def parse_quotas(quotas: TenantQuotas | Mapping[str, Any]) -> TenantQuotas:
    if isinstance(quotas, TenantQuotas):
        return quotas
    try:
        return TenantQuotas.model_validate(quotas)
    except ValidationError as exc:
        raise InvalidRequest("quotas", validation_errors(exc)) from None


def _visible_tenant(identity: Identity, tenant: str) -> None:
    if not TENANT.match(tenant):
        raise InvalidRequest(
            "tenant",
            [{"loc": "tenant", "msg": f"'{tenant}' is not a tenant name", "type": "pattern"}],
        )
    if not identity.sees(tenant):
        raise NotFound("tenant", tenant)  # another tenant's quotas look like no tenant at all


class Quotas:
    """Setting and reading a tenant's quotas (admins set them, readers see them)."""

    def __init__(self, ctx: Context, cache: QuotaCache | None = None):
        self.ctx = ctx
        self.cache = cache or QuotaCache(ctx.store.quota_tenants)

    def set(self, identity: Identity, tenant: str, quotas: TenantQuotas | Mapping[str, Any]) -> QuotaView:
        identity.require(Role.ADMIN, "set quotas")
        _visible_tenant(identity, tenant)
        parsed = parse_quotas(quotas)

        def work(uow: UnitOfWork) -> None:
            now = self.ctx.clock.now()
            found = uow.lock_tenant(tenant)
            agg = Tenant.register(tenant, now) if found is None else found
            agg.set_quotas(parsed, identity.subject, now)
            uow.add(agg)

        self.ctx.transact(work)
        self.cache.invalidate()
        return self._view(tenant)

    def get(self, identity: Identity, tenant: str) -> QuotaView:
        identity.require(Role.READER, "read quotas")
        _visible_tenant(identity, tenant)
        return self._view(tenant)

    def _view(self, tenant: str) -> QuotaView:
        row, usage = self.ctx.store.tenant_status(tenant, self.ctx.clock.now() - WINDOW)
        return QuotaView.of(
            tenant,
            row,
            QuotaUsage(
                queued=usage.waiting, in_flight=usage.in_flight, submitted_last_minute=usage.created_since
            ),
        )


def capped_in(quotas: dict[str, TenantQuotas], tenants: tuple[str, ...] | None) -> list[str]:
    """The tenants among ``tenants`` (None: all) with a ``max_in_flight`` in ``quotas``, by name."""
    names = quotas if tenants is None else [t for t in tenants if t in quotas]
    return sorted(t for t in names if quotas[t].max_in_flight is not None)
