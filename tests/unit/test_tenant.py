"""The Tenant aggregate (quotas, refusal counts), its row, the quota cache and the
quota refusal error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pydantic import ValidationError

from coordinator.errors import QuotaExceeded, Unavailable
from coordinator.quotas import QuotaCache
from domain.tenant import (
    QUOTA_NAMES,
    AdmissionRefused,
    QuotasSet,
    Tenant,
    TenantQuotas,
    TenantRegistered,
    TenantSnapshot,
    tenant_uuid,
)
from projections.rebuild import replay
from projections.tenant_rows import TenantRow, tenant_row
from tests.unit.job_factories import START, at


def registered_tenant(name: str = "acme", **quotas: Any) -> Tenant:
    tenant = Tenant.register(name, START)
    tenant.set_quotas(TenantQuotas(**quotas), "admin", START)
    return tenant


def restored(tenant: Tenant) -> Tenant:
    snapshot = TenantSnapshot.model_validate_json(tenant.to_snapshot().model_dump_json())
    return Tenant.restore(tenant.version, snapshot)


# -------------------------------------------------------------- aggregate


def test_register_derives_the_id_from_the_name() -> None:
    tenant = Tenant.register("acme", START)
    assert (tenant.id, tenant.name) == (tenant_uuid("acme"), "acme")
    assert tenant_uuid("acme") == tenant_uuid("acme") != tenant_uuid("beta")
    assert tenant.quotas == TenantQuotas()
    assert (tenant.quotas_set_at, tenant.refusals) == (None, {})
    assert [type(e) for e in tenant.pending_events] == [TenantRegistered]


def test_set_quotas_records_who_and_when() -> None:
    tenant = registered_tenant(max_queued=5)
    event = tenant.pending_events[-1]
    assert isinstance(event, QuotasSet)
    assert (event.max_queued, event.max_in_flight, event.submits_per_minute) == (5, None, None)
    assert (event.set_by, tenant.quotas_set_by, tenant.quotas_set_at) == ("admin", "admin", START)
    assert tenant.quotas == TenantQuotas(max_queued=5)


def test_setting_the_quotas_in_force_records_nothing() -> None:
    tenant = registered_tenant(max_queued=5)
    before = len(tenant.pending_events)
    assert tenant.set_quotas(TenantQuotas(max_queued=5), "someone", at(10)) is False
    assert len(tenant.pending_events) == before
    assert tenant.set_quotas(TenantQuotas(max_queued=6), "someone", at(10)) is True
    assert tenant.quotas_set_at == at(10)


def test_the_first_set_is_recorded_even_when_unlimited() -> None:
    tenant = Tenant.register("acme", START)
    assert tenant.set_quotas(TenantQuotas(), "admin", START) is True
    assert tenant.quotas_set_at == START


def test_refusals_are_counted_per_quota() -> None:
    tenant = registered_tenant(max_queued=1, submits_per_minute=1)
    tenant.refuse_admission("max_queued", limit=1, current=1, requested=2, now=at(1))
    tenant.refuse_admission("max_queued", limit=1, current=1, requested=1, now=at(2))
    tenant.refuse_admission("submits_per_minute", limit=1, current=1, requested=1, now=at(3))
    assert tenant.refusals == {"max_queued": 2, "submits_per_minute": 1}
    event = tenant.pending_events[-1]
    assert isinstance(event, AdmissionRefused)
    assert (event.quota, event.limit, event.current, event.requested) == ("submits_per_minute", 1, 1, 1)


def test_restore_round_trips_through_the_snapshot() -> None:
    tenant = registered_tenant(max_in_flight=3)
    tenant.refuse_admission("max_queued", limit=0, current=0, requested=1, now=at(5))
    back = restored(tenant)
    assert (back.id, back.version) == (tenant.id, tenant.version)
    assert back.to_snapshot() == tenant.to_snapshot()
    back.refuse_admission("max_queued", limit=0, current=0, requested=1, now=at(6))
    assert back.pending_events[-1].originator_version == tenant.version + 1


def test_replay_equals_live() -> None:
    tenant = registered_tenant(max_queued=2)
    tenant.refuse_admission("max_queued", limit=2, current=2, requested=1, now=at(1))
    (replayed,) = replay(tenant.pending_events).values()  # type: ignore[arg-type]
    assert replayed.to_snapshot() == tenant.to_snapshot()


@pytest.mark.parametrize(
    "fields", [{"max_queued": -1}, {"max_in_flight": 10_000_001}, {"other": 1}, {"submits_per_minute": 1.5}]
)
def test_quotas_are_validated(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TenantQuotas.model_validate(fields)


def test_quotas_say_what_they_limit() -> None:
    assert not TenantQuotas().any()
    assert TenantQuotas(max_in_flight=1).any()
    assert not TenantQuotas(max_in_flight=1).limits_admission()
    assert TenantQuotas(max_queued=0).limits_admission()
    assert TenantQuotas(submits_per_minute=0).limits_admission()


# -------------------------------------------------------------------- row


def test_the_row_holds_limits_refusals_and_snapshot() -> None:
    tenant = registered_tenant(max_queued=4, submits_per_minute=9)
    tenant.refuse_admission("max_queued", limit=4, current=4, requested=1, now=at(1))
    row = tenant_row(tenant)
    assert (row.tenant, row.max_queued, row.max_in_flight, row.submits_per_minute) == ("acme", 4, None, 9)
    assert (row.refusals(), row.quotas(), row.quotas_set_at) == ({"max_queued": 1}, tenant.quotas, START)
    assert row.version == tenant.version
    assert TenantSnapshot.model_validate_json(row.snapshot_json) == tenant.to_snapshot()


# ------------------------------------------------------------------ cache


class Loader:
    def __init__(self, rows: list[TenantRow]):
        self.rows = rows
        self.calls = 0
        self.fail = False

    def __call__(self) -> list[TenantRow]:
        self.calls += 1
        if self.fail:
            raise Unavailable("down")
        return self.rows


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_reloads_after_its_ttl_or_when_invalidated() -> None:
    load, ticks = Loader([tenant_row(registered_tenant(max_queued=1))]), Ticks()
    cache = QuotaCache(load, ttl=1.0, monotonic=ticks)
    assert cache.quotas_of("acme") == TenantQuotas(max_queued=1)
    assert cache.quotas_of("beta") is None
    ticks.now += 0.9
    cache.quotas_of("acme")
    assert load.calls == 1
    ticks.now += 0.2
    cache.quotas_of("acme")
    assert load.calls == 2
    cache.invalidate()
    cache.quotas_of("acme")
    assert load.calls == 3


def test_the_cache_lists_capped_tenants_and_drops_unlimited_ones() -> None:
    rows = [
        tenant_row(registered_tenant("a", max_in_flight=1)),
        tenant_row(registered_tenant("b", max_queued=1)),
        tenant_row(registered_tenant("c")),
        tenant_row(registered_tenant("d", max_in_flight=0)),
    ]
    cache = QuotaCache(Loader(rows), monotonic=Ticks())
    assert cache.capped(None) == ["a", "d"]
    assert cache.capped(("d", "b", "z")) == ["d"]
    assert cache.quotas_of("c") is None


def test_the_cache_keeps_its_last_answer_when_a_reload_fails() -> None:
    load, ticks = Loader([tenant_row(registered_tenant(max_queued=1))]), Ticks()
    cache = QuotaCache(load, ttl=1.0, monotonic=ticks)
    cache.quotas_of("acme")
    load.fail = True
    ticks.now += 5
    assert cache.quotas_of("acme") == TenantQuotas(max_queued=1)
    load.fail = False
    cache.quotas_of("acme")
    assert load.calls == 3  # tried again on the next call, not after another TTL


def test_a_refresh_reloads_ahead_of_expiry_and_keeps_the_last_answer_when_it_fails() -> None:
    load, ticks = Loader([tenant_row(registered_tenant(max_queued=1))]), Ticks()
    cache = QuotaCache(load, ttl=1.0, monotonic=ticks)
    # Never loaded, the store down: a refresh raises the store's error (its caller,
    # the background refresher, logs the outage), and nothing is loaded
    load.fail = True
    with pytest.raises(Unavailable):
        cache.refresh()
    assert cache.loaded() is None
    load.fail = False
    cache.refresh()
    assert load.calls == 2
    # Refreshed every 0.6 s, the cache never expires: no request reloads it
    for _ in range(5):
        ticks.now += 0.6
        cache.refresh()
        assert cache.loaded() == {"acme": TenantQuotas(max_queued=1)}
    cache.quotas_of("acme")
    assert load.calls == 7
    # A failed refresh keeps the last answer until it expires as usual
    load.fail = True
    ticks.now += 0.5
    with pytest.raises(Unavailable):
        cache.refresh()
    assert cache.loaded() == {"acme": TenantQuotas(max_queued=1)}
    ticks.now += 0.6
    assert cache.loaded() is None


def test_the_cache_raises_when_it_never_loaded() -> None:
    load = Loader([])
    load.fail = True
    with pytest.raises(Unavailable):
        QuotaCache(load, monotonic=Ticks()).quotas_of("acme")


# ------------------------------------------------------------------ error


def test_quota_exceeded_carries_its_fields_and_says_what_to_do() -> None:
    error = QuotaExceeded("acme", "submits_per_minute", 10, 10, 12.2, requested=1)
    assert error.fields == {
        "tenant": "acme",
        "quota": "submits_per_minute",
        "limit": 10,
        "current": 10,
        "retry_after_seconds": 12.2,
    }
    assert (error.code, error.retryable, error.requested) == ("quota-exceeded", False, 1)
    assert "retry in 13 s" in error.message
    assert "PUT /v1/tenants/acme/quotas" in error.message
    assert error.to_dict()["code"] == "quota-exceeded"


def test_quota_exceeded_without_requested_still_reads_well() -> None:
    error = QuotaExceeded("acme", "max_queued", 3, 3, 0.2)
    assert "retry in 1 s" in error.message
    assert error.requested is None


# ---------------------------------------------------------- state machine

quota_values = st.one_of(st.none(), st.integers(0, 5))


class TenantMachine(RuleBasedStateMachine):
    """Random quota changes and refusals: the history always replays to the live
    tenant, the snapshot restores it, and every refusal is counted exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.tenant = Tenant.register("acme", START)
        self.history: list[Any] = []
        """Events of tenants this one was restored from (collected, as at a commit)."""
        self.seconds = 0.0
        self.refused: dict[str, int] = {}
        self.last_set: TenantQuotas | None = None

    def _now(self) -> Any:
        self.seconds += 1
        return at(self.seconds)

    @rule(max_queued=quota_values, max_in_flight=quota_values, per_minute=quota_values)
    def set_quotas(self, max_queued: int | None, max_in_flight: int | None, per_minute: int | None) -> None:
        quotas = TenantQuotas(
            max_queued=max_queued, max_in_flight=max_in_flight, submits_per_minute=per_minute
        )
        changed = self.tenant.set_quotas(quotas, "admin", self._now())
        assert changed == (self.last_set != quotas)
        self.last_set = quotas

    @rule(quota=st.sampled_from(QUOTA_NAMES), requested=st.integers(1, 5))
    def refuse(self, quota: Any, requested: int) -> None:
        self.tenant.refuse_admission(quota, limit=0, current=0, requested=requested, now=self._now())
        self.refused[quota] = self.refused.get(quota, 0) + 1

    @rule()
    def commit_and_restore_from_snapshot(self) -> None:
        # What a unit of work does: its events are stored, the next one restores the
        # tenant from the row's snapshot.
        self.history += self.tenant.collect_events()
        back = restored(self.tenant)
        assert back.to_snapshot() == self.tenant.to_snapshot()
        self.tenant = back

    @invariant()
    def replay_equals_live(self) -> None:
        events = [*self.history, *self.tenant.pending_events]
        (replayed,) = replay(events).values()  # type: ignore[arg-type]
        assert replayed.to_snapshot() == self.tenant.to_snapshot()
        assert replayed.version == self.tenant.version == len(events)

    @invariant()
    def refusals_are_counted_once(self) -> None:
        assert self.tenant.refusals == self.refused

    @invariant()
    def the_last_quotas_set_are_in_force(self) -> None:
        assert self.tenant.quotas == (self.last_set or TenantQuotas())


TestTenantMachine = TenantMachine.TestCase
TestTenantMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
