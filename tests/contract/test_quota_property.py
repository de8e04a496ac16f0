"""A hypothesis state machine over a real store with quotas in force: random submits
(single, batches, resubmits), claims (the tenant's own and fleet-wide), completions and
clock moves, with after every step: no limit passed, every refusal counted once in the
tenant view, no job lost or half-created, and the views equal their rebuild."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from adapters.bootstrap import Settings
from coordinator.claiming import ClaimRequest
from coordinator.errors import QuotaExceeded
from coordinator.fleet import Fleet
from coordinator.quotas import TenantQuotas
from domain.errors import IdempotencyConflict
from tests.support import FakeClock, build_fleet, fleet_wide, fresh_pg_database, make_spec, tenant

ACME = tenant("acme")
BETA = tenant("beta")
ADMIN = fleet_wide("admin")
WORKER = fleet_wide("worker")
_TEMPLATE: dict[str, str] = {}
limits = st.one_of(st.none(), st.integers(0, 4))


class QuotaMachine(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self._cleanup: list[Callable[[], Any]] = []
        if self.backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="fleetlog-quota-")
            self._cleanup.append(lambda: shutil.rmtree(folder, ignore_errors=True))
            config = Settings(data_dir=Path(folder))
        else:
            ctx = fresh_pg_database(_TEMPLATE["postgres"])
            url = ctx.__enter__()
            self._cleanup.append(lambda: ctx.__exit__(None, None, None))
            config = Settings(database_url=url, pool_size=1, max_overflow=2)
        self.fleet: Fleet = build_fleet(config, self.clock)
        self.quotas = TenantQuotas()
        self.refusals: dict[str, int] = {}
        self.created: list[Any] = []
        """When each job the model expects was created."""
        self.keys: dict[str, int] = {}
        """Idempotency key -> payload of the job answering to it."""

    def teardown(self) -> None:
        self.fleet.close()
        for clean in self._cleanup:
            clean()

    @initialize(max_queued=limits, max_in_flight=limits, per_minute=limits)
    def set_quotas(self, max_queued: int | None, max_in_flight: int | None, per_minute: int | None) -> None:
        self.quotas = TenantQuotas(
            max_queued=max_queued, max_in_flight=max_in_flight, submits_per_minute=per_minute
        )
        self.fleet.set_quotas(ADMIN, "acme", self.quotas)

    def _submit(self, specs: list[dict[str, Any]], batch: bool) -> None:
        try:
            if batch:
                outcomes = [r.outcome for r in self.fleet.submit_many(ACME, specs)]
            else:
                outcomes = [self.fleet.submit(ACME, specs[0]).outcome]
        except QuotaExceeded as refusal:
            quota = refusal.fields["quota"]
            self.refusals[quota] = self.refusals.get(quota, 0) + 1
            return
        except IdempotencyConflict:
            return  # the key's job is past superseding: a refusal that records nothing
        for spec, outcome in zip(specs, outcomes, strict=True):
            if outcome is None:
                continue  # the item was refused on its own (the batch answers per item)
            if outcome != "existing":
                self.created.append(self.clock.now())
            if spec.get("idempotency_key"):
                self.keys[spec["idempotency_key"]] = spec["payload"]["n"]

    @rule(
        count=st.integers(1, 3),
        batch=st.booleans(),
        key=st.sampled_from([None, "k1", "k2"]),
        payload=st.integers(0, 1),
    )
    def submit(self, count: int, batch: bool, key: str | None, payload: int) -> None:
        spec = make_spec(payload={"n": payload})
        if key is not None:
            spec["idempotency_key"] = key
            count = 1  # one job per key and request: a batch repeating a key supersedes itself
        self._submit([dict(spec) for _ in range(count)], batch or count > 1)

    @rule(max_jobs=st.integers(1, 4), wide=st.booleans())
    def claim(self, max_jobs: int, wide: bool) -> None:
        self.fleet.submit(BETA, make_spec())  # another tenant's work alongside
        who = WORKER if wide else ACME
        self.fleet.claim(who, ClaimRequest(factory_id="host", capabilities=(), max_jobs=max_jobs))

    @rule()
    def finish_one(self) -> None:
        leased = self.fleet.list_jobs(ACME, states=("assigned",), limit=1).jobs
        if leased:
            self.fleet.succeed(ACME, leased[0].id, leased[0].epoch)

    @rule(seconds=st.sampled_from([0, 5, 30, 61]))
    def tick(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # ------------------------------------------------------------ invariants

    @invariant()
    def no_limit_passed_and_every_refusal_counted(self) -> None:
        view = self.fleet.get_quotas(ADMIN, "acme")
        q = self.quotas
        if q.max_queued is not None:
            assert view.usage.queued <= q.max_queued
        if q.max_in_flight is not None:
            assert view.usage.in_flight <= q.max_in_flight
        if q.submits_per_minute is not None:
            assert view.usage.submitted_last_minute <= q.submits_per_minute
        assert view.refusals == self.refusals

    @invariant()
    def no_job_lost_or_half_created(self) -> None:
        jobs = self.fleet.list_jobs(ACME, limit=500).jobs
        assert len(jobs) == len(self.created)
        window_start = self.clock.now() - timedelta(seconds=60)
        recent = self.fleet.get_quotas(ADMIN, "acme").usage.submitted_last_minute
        assert recent == sum(1 for at in self.created if at > window_start)
        for key, n in self.keys.items():
            [current] = [j for j in jobs if j.idempotency_key == key and j.state != "superseded"]
            assert self.fleet.get(ACME, current.id).payload == {"n": n}

    @invariant()
    def views_equal_the_rebuild(self) -> None:
        report = self.fleet.verify_projections(ADMIN)
        assert report.ok, [d.describe() for d in report.differences]


class SQLiteQuotaMachine(QuotaMachine):
    backend = "sqlite"


class PostgresQuotaMachine(QuotaMachine):
    backend = "postgres"


TestSQLiteQuotas = SQLiteQuotaMachine.TestCase
TestSQLiteQuotas.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


@pytest.fixture
def _postgres_template(pg_template: str) -> None:
    _TEMPLATE["postgres"] = pg_template


@pytest.mark.postgres
@pytest.mark.usefixtures("_postgres_template")
class TestPostgresQuotas(PostgresQuotaMachine.TestCase):  # type: ignore[name-defined,misc]
    settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
