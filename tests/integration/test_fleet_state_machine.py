"""Random command sequences against a real store, with the invariants checked after every
step: at most one live lease per job, epochs only increase, terminal states absorb, the
live views equal views rebuilt from the log, and replaying each job's events gives the
state the hot path (the snapshot in the job view) holds."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters.bootstrap import Settings
from coordinator.claiming import ClaimRequest
from coordinator.fleet import Fleet
from domain.errors import DomainError
from domain.factory import FactoryReport
from domain.job.spec import ErrorInfo
from tests.support import FakeClock, build_fleet, fleet_wide, fresh_pg_database, tenant

TERMINAL = {"succeeded", "cancelled", "superseded"}
TENANTS = [tenant("acme"), tenant("globex")]
ADMIN = fleet_wide()
_TEMPLATE: dict[str, str] = {}
MAX_JOBS = 6
"""Few jobs, many steps each: sequences reach deep states instead of only submitting."""


class FleetMachine(RuleBasedStateMachine):
    backend = "sqlite"
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self._cleanup = []
        if self.backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="fleetlog-sm-")
            self._cleanup.append(lambda: shutil.rmtree(folder, ignore_errors=True))
            config = Settings(data_dir=Path(folder))
        else:
            ctx = fresh_pg_database(_TEMPLATE["postgres"])
            url = ctx.__enter__()
            self._cleanup.append(lambda: ctx.__exit__(None, None, None))
            config = Settings(database_url=url, pool_size=1, max_overflow=2)
        self.fleet: Fleet = build_fleet(config, self.clock)
        self.epochs: dict[uuid.UUID, int] = {}
        self.owner: dict[uuid.UUID, int] = {}
        self.terminal: dict[uuid.UUID, str] = {}
        self.known_epochs: dict[uuid.UUID, set[int]] = {}
        self.views: dict[uuid.UUID, object] = {}

    def teardown(self) -> None:
        self.fleet.close()
        for clean in self._cleanup:
            clean()

    def _try(self, action):
        try:
            return action()
        except DomainError:
            return None  # a refusal is a legitimate outcome; invariants still hold

    # ---------------------------------------------------------------- rules

    @initialize()
    def factories(self) -> None:
        self.fleet.heartbeat(ADMIN, FactoryReport(factory_id="host-a", heartbeat_timeout_seconds=30))

    @precondition(lambda self: len(self.views) < MAX_JOBS)
    @rule(
        target=jobs,
        who=st.integers(0, 1),
        key=st.sampled_from([None, None, "k1", "k2"]),
        payload=st.integers(0, 2),
        phases=st.sampled_from([[], ["build", "test"]]),
        attempts=st.integers(1, 3),
        lease=st.sampled_from([5, 30]),
        delay=st.sampled_from([None, 10]),
    )
    def submit(self, who, key, payload, phases, attempts, lease, delay):  # noqa: PLR0917 (hypothesis draws each)
        spec = {
            "payload": {"v": payload},
            "phases": phases,
            "retry": {"max_attempts": attempts, "base_seconds": 1, "jitter": 0},
            "lease_seconds": lease,
        }
        if key:
            spec["idempotency_key"] = key
        if delay:
            spec["run_at"] = (self.clock.now() + __import__("datetime").timedelta(seconds=delay)).isoformat()
        result = self._try(lambda: self.fleet.submit(TENANTS[who], spec))
        if result is None:
            return None
        self.owner[result.job.id] = who
        return result.job.id

    @precondition(lambda self: len(self.views) < MAX_JOBS)
    @rule(target=jobs, upstream=jobs, mode=st.sampled_from(["hard", "soft"]))
    def submit_dependent(self, upstream, mode):
        if upstream is None:
            return None
        who = self.owner[upstream]
        result = self._try(
            lambda: self.fleet.submit(TENANTS[who], {"deps": [str(upstream)], "deps_mode": mode})
        )
        if result is None:
            return None
        self.owner[result.job.id] = who
        return result.job.id

    def _in(self, *states: str) -> list[uuid.UUID]:
        return sorted(j for j, v in self.views.items() if v.state in states)  # type: ignore[attr-defined]

    @precondition(lambda self: self._in("queued", "scheduled", "failed"))
    @rule(n=st.integers(1, 4), factory=st.sampled_from(["host-a", "host-b"]), fleetwide=st.booleans())
    def claim(self, n, factory, fleetwide):
        who = ADMIN if fleetwide else TENANTS[0]
        claimed = self._try(lambda: self.fleet.claim(who, ClaimRequest(factory_id=factory, max_jobs=n))) or []
        for c in claimed:
            self.known_epochs.setdefault(c.job.id, set()).add(c.epoch)

    def _epoch(self, job, stale):
        seen = sorted(self.known_epochs.get(job, {0}))
        return seen[0] if stale else seen[-1]

    def _leased(self, data):
        return data.draw(st.sampled_from(self._in("assigned", "running")), label="leased job")

    @precondition(lambda self: self._in("assigned", "running"))
    @rule(
        data=st.data(),
        stale=st.booleans(),
        write=st.sampled_from(["renew", "phase", "checkpoint", "succeed", "fail", "fail-fatal", "release"]),
        arg=st.sampled_from(["build", "test"]),
    )
    def worker_write(self, data, stale, write, arg):
        job = self._leased(data)
        who, epoch = TENANTS[self.owner[job]], self._epoch(job, stale)
        writes = {
            "renew": lambda: self.fleet.renew(who, job, epoch),
            "phase": lambda: self.fleet.report_phase(who, job, epoch, arg),
            "checkpoint": lambda: self.fleet.checkpoint(who, job, epoch, {"phase": arg}),
            "succeed": lambda: self.fleet.succeed(who, job, epoch, {"ok": True}),
            "fail": lambda: self.fleet.fail(who, job, epoch, ErrorInfo(kind="boom")),
            "fail-fatal": lambda: self.fleet.fail(who, job, epoch, ErrorInfo(kind="bad", retryable=False)),
            "release": lambda: self.fleet.release(who, job, epoch),
        }
        self._try(writes[write])

    @rule(job=jobs, stale=st.booleans())
    def write_to_any_job(self, job, stale):
        # Zombies and confused workers: writes to jobs in any state, mostly refused
        if job is not None:
            self._try(
                lambda: self.fleet.checkpoint(
                    TENANTS[self.owner[job]], job, self._epoch(job, stale), {"z": 1}
                )
            )

    @rule(job=jobs, action=st.sampled_from(["cancel", "requeue", "requeue", "requeue", "requeue"]))
    def operator(self, job, action):
        if job is None:
            return
        if action == "cancel":
            self._try(lambda: self.fleet.cancel(TENANTS[self.owner[job]], job))
        else:
            self._try(lambda: self.fleet.requeue(ADMIN, job))

    @rule(
        action=st.sampled_from(
            ["advance:1", "advance:6", "advance:31", "advance:61", "reap", "schedule", "heartbeat"]
        )
    )
    def tick(self, action):
        if action.startswith("advance:"):
            self.clock.advance(int(action.split(":")[1]))
        elif action == "reap":
            self.fleet.reaper.run_once()
        elif action == "schedule":
            self.fleet.scheduler.run_once()
        else:
            report = FactoryReport(factory_id="host-a", heartbeat_timeout_seconds=30)
            self._try(lambda: self.fleet.heartbeat(ADMIN, report))

    # ----------------------------------------------------------- invariants

    def _all_jobs(self):
        rows = []
        cursor = None
        while True:
            page = self.fleet.list_jobs(ADMIN, limit=500, cursor=cursor)
            rows += page.jobs
            if page.next_cursor is None:
                return rows
            cursor = page.next_cursor

    @invariant()
    def leases_epochs_and_terminal_states(self) -> None:
        for row in self._all_jobs():
            job = self.fleet.get(ADMIN, row.id)
            self.views[job.id] = job
            # At most one live lease, and exactly when the job is leased
            assert (job.lease is not None) == (job.state in ("assigned", "running")), job
            if job.lease is not None:
                assert job.lease.epoch == job.epoch
            assert sum(1 for r in self.fleet.runs(ADMIN, job.id) if r.outcome is None) == (
                job.lease is not None
            )
            # Epochs only increase
            assert job.epoch >= self.epochs.get(job.id, 0)
            self.epochs[job.id] = job.epoch
            # Terminal states absorb
            if job.id in self.terminal:
                assert job.state == self.terminal[job.id]
            if job.state in TERMINAL:
                self.terminal[job.id] = job.state

    @invariant()
    def replay_equals_the_hot_path(self) -> None:
        for row in self._all_jobs():
            live = self.fleet.get(ADMIN, row.id)
            replayed = self.fleet.state_at(ADMIN, row.id, live.version)
            assert replayed == live

    @invariant()
    def views_equal_the_rebuild(self) -> None:
        report = self.fleet.verify_projections(ADMIN)
        assert report.ok, [d.describe() for d in report.differences]


class SQLiteFleetMachine(FleetMachine):
    backend = "sqlite"


class PostgresFleetMachine(FleetMachine):
    backend = "postgres"


TestSQLiteFleet = SQLiteFleetMachine.TestCase
TestSQLiteFleet.settings = settings(max_examples=60, stateful_step_count=50, deadline=None)


@pytest.fixture
def _postgres_template(pg_template: str) -> None:
    _TEMPLATE["postgres"] = pg_template


@pytest.mark.postgres
@pytest.mark.usefixtures("_postgres_template")
class TestPostgresFleet(PostgresFleetMachine.TestCase):  # type: ignore[name-defined,misc]
    settings = settings(max_examples=20, stateful_step_count=40, deadline=None)
