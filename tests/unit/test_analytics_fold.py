"""The analytics fold: domain events to ClickHouse rows.

Scenarios check exact rows for realistic histories (built through commands only); a
hypothesis property checks that rows never depend on batch boundaries, priming or
eviction, and agree with the Job aggregate itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.eventstore.mapper import JSONTextTranscoder, PydanticMapper
from domain.errors import DomainError
from domain.events import DomainEvent
from domain.factory import Health
from domain.job import JOB_TRANSITIONS, Job, JobState
from domain.job import events as e
from domain.job.spec import RunInsights
from domain.job.states import LEASED, WAITING
from domain.tenant import Tenant, TenantQuotas
from projections.analytics import COLUMNS, DESCRIPTIONS, AnalyticsFold, NotPrimed, RowBatch
from projections.analytics.context import _STEPS
from projections.analytics.rows import ENVELOPE
from tests.unit.histories import factory_histories, job_histories, profile_histories, tenant_histories
from tests.unit.job_factories import (
    FACTORY,
    at,
    failing,
    hard_dep,
    history,
    make_report,
    make_spec,
    registered_factory,
    registered_profile,
    submitted_job,
)

FIRST_ID = 100
"""Notification ids start here, so a test cannot mistake one for a version."""


class Log:
    """The event log: aggregates' new events in commit order, numbered."""

    def __init__(self) -> None:
        self.events: list[tuple[int, DomainEvent]] = []

    def record(self, *aggregates: Any) -> None:
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                self.events.append((FIRST_ID + len(self.events), event))

    def of(self, originator_id: UUID) -> list[DomainEvent]:
        return [ev for _, ev in self.events if ev.originator_id == originator_id]


def fold_all(log: Log) -> RowBatch:
    fold = AnalyticsFold()
    for notification_id, event in log.events:
        assert not fold.needs_priming(event.originator_id, event.originator_version)
        fold.apply(notification_id, event)
    return fold.take()


def dicts(batch: RowBatch, table: str) -> list[dict[str, Any]]:
    return [dict(zip(COLUMNS[table], r, strict=True)) for r in batch[table]]


def job_columns(job: Job) -> dict[str, Any]:
    return {"tenant": "acme", "job_id": job.id, "queue": job.spec.queue, "kind": "leaf", "priority": 20}


def run(job: Job, **values: Any) -> dict[str, Any]:
    """An expected job_runs row: the job's columns, defaults, then ``values``."""
    return {**job_columns(job), "error_kind": "", "retryable": 0, **values}


def lease_columns(batch: RowBatch) -> list[tuple[str, str, int]]:
    return [(r["type"], r["factory_id"], r["epoch"]) for r in dicts(batch, "fleet_events")]


# ------------------------------------------------------------------ scenarios


def test_a_run_that_succeeds_with_final_insights() -> None:
    # Given a job leased 1.5 s after submit, started, in a phase, with interim usage
    log = Log()
    job = submitted_job(queue="build", priority="high")
    job.grant_lease(FACTORY, 60, at(1.5))
    job.start(1, at(2))
    job.report_phase(1, "build", at(3))
    job.report_insights(1, RunInsights(model="m-1", tokens_in=100, cost_usd=0.1), at(4))
    final = RunInsights(model="m-1", tokens_in=300, tokens_out=50, tokens_cached=7, cost_usd=0.25, turns=3)
    # When it succeeds with its final usage
    job.succeed(1, {"ok": True}, final, at(10))
    log.record(job)
    batch = fold_all(log)
    # Then one run, with the final usage (not the interim one), and the job succeeded
    cols = {**job_columns(job), "priority": 10}
    assert dicts(batch, "job_runs") == [
        {
            **cols,
            "attempt": 1,
            "epoch": 1,
            "factory_id": FACTORY,
            "ready_at": at(0),
            "leased_at": at(1.5),
            "ended_at": at(10),
            "wait_ms": 1500.0,
            "run_ms": 8500.0,
            "outcome": "succeeded",
            "error_kind": "",
            "retryable": 0,
            "notification_id": 105,
        }
    ]
    assert dicts(batch, "run_insights") == [
        {
            **{k: cols[k] for k in ("tenant", "job_id", "queue")},
            "attempt": 1,
            "epoch": 1,
            "factory_id": FACTORY,
            **final.model_dump(exclude={"model"}),
            "model": "m-1",
            "outcome": "succeeded",
            "at": at(10),
            "notification_id": 105,
        }
    ]
    assert dicts(batch, "jobs_latest") == [
        {
            **cols,
            "state": "succeeded",
            "phase": "",
            "epoch": 1,
            "attempts": 1,
            "factory_id": FACTORY,
            "created_at": at(0),
            "updated_at": at(10),
            "version": 6,
            "notification_id": 105,
        }
    ]
    # And every event is a fleet_events row; lease events name the holder and epoch
    assert lease_columns(batch) == [
        ("JobSubmitted", "", 0),
        *[(t, FACTORY, 1) for t in ("LeaseGranted", "JobStarted", "PhaseReported")],
        *[(t, FACTORY, 1) for t in ("InsightsReported", "JobSucceeded")],
    ]


def test_fleet_events_columns_and_attrs() -> None:
    log = Log()
    job = submitted_job(queue="build")
    job.grant_lease(FACTORY, 60, at(1))
    log.record(job)
    submitted, granted = dicts(fold_all(log), "fleet_events")
    assert {k: submitted[k] for k in ("tenant", "aggregate", "originator_id", "version", "queue")} == {
        "tenant": "acme",
        "aggregate": "job",
        "originator_id": job.id,
        "version": 1,
        "queue": "build",
    }
    assert (submitted["notification_id"], submitted["at"], submitted["at"].tzinfo) == (100, at(0), UTC)
    # attrs: the event's own fields, compact, without the envelope
    body = json.loads(granted["attrs"])
    assert body == {"factory_id": FACTORY, "epoch": 1, "attempt": 1, "expires_at": "2026-01-05T09:01:01Z"}
    assert " " not in granted["attrs"]
    assert not ENVELOPE & set(json.loads(submitted["attrs"]))
    assert json.loads(submitted["attrs"])["spec"]["queue"] == "build"


def test_a_failure_retries_then_succeeds() -> None:
    # Given a retryable failure whose retry falls due at retry_at
    log = Log()
    job = submitted_job()
    job.grant_lease(FACTORY, 60, at(1))
    job.fail(1, failing("flaky"), RunInsights(tokens_in=10), at(4), jitter_sample=0.5)
    retry_at = job.available_at
    assert retry_at is not None
    # When the scheduler promotes it late and another factory runs it
    job.make_ready(retry_at + timedelta(seconds=5))
    job.grant_lease("factory-2", 60, retry_at + timedelta(seconds=6))
    job.succeed(2, None, None, retry_at + timedelta(seconds=9))
    log.record(job)
    batch = fold_all(log)
    # Then the wait counts from when the retry fell due, not from the late JobReady
    assert dicts(batch, "job_runs") == [
        run(job, attempt=1, epoch=1, factory_id=FACTORY, ready_at=at(0), leased_at=at(1), ended_at=at(4),
            wait_ms=1000.0, run_ms=3000.0, outcome="failed", error_kind="flaky", retryable=1,
            notification_id=102),
        run(job, attempt=2, epoch=2, factory_id="factory-2", ready_at=retry_at,
            leased_at=retry_at + timedelta(seconds=6), ended_at=retry_at + timedelta(seconds=9),
            wait_ms=6000.0, run_ms=3000.0, outcome="succeeded", notification_id=105),
    ]  # fmt: skip
    assert [(r["attempt"], r["tokens_in"], r["outcome"]) for r in dicts(batch, "run_insights")] == [
        (1, 10, "failed")
    ]
    [latest] = dicts(batch, "jobs_latest")
    assert (latest["state"], latest["attempts"], latest["epoch"], latest["factory_id"]) == (
        "succeeded", 2, 2, "factory-2"
    )  # fmt: skip


def test_an_expired_lease_then_a_zombie_writes() -> None:
    # Given a lease that expires (the fencing epoch moves to 2) with interim usage
    log = Log()
    job = submitted_job()
    job.grant_lease(FACTORY, 60, at(1))
    job.report_insights(1, RunInsights(model="m-2", cost_usd=0.5), at(30))
    job.expire_lease("lease_timeout", at(62))
    # When the old holder writes under epoch 1, someone presents the never-granted epoch 2,
    # and the job is leased again (epoch 3)
    for epoch in (1, 2):
        with pytest.raises(DomainError):
            job.succeed(epoch, None, None, at(63))
    job.grant_lease("factory-2", 60, at(70))
    log.record(job)
    batch = fold_all(log)
    # Then the expired run, then one stale row per refused write, each under its epoch
    assert dicts(batch, "job_runs") == [
        run(job, attempt=1, epoch=1, factory_id=FACTORY, ready_at=at(0), leased_at=at(1), ended_at=at(62),
            wait_ms=1000.0, run_ms=61000.0, outcome="expired", notification_id=103),
        run(job, attempt=1, epoch=1, factory_id=FACTORY, ready_at=at(63), leased_at=at(63), ended_at=at(63),
            wait_ms=0.0, run_ms=0.0, outcome="stale_rejected", notification_id=104),
        run(job, attempt=0, epoch=2, factory_id="", ready_at=at(63), leased_at=at(63), ended_at=at(63),
            wait_ms=0.0, run_ms=0.0, outcome="stale_rejected", notification_id=105),
    ]  # fmt: skip
    # And the expired run's usage is its last interim report
    [usage] = dicts(batch, "run_insights")
    assert (usage["model"], usage["cost_usd"], usage["outcome"], usage["at"]) == (
        "m-2",
        0.5,
        "expired",
        at(62),
    )
    assert lease_columns(batch)[3:] == [
        ("LeaseExpired", FACTORY, 1),
        ("StaleWriteRejected", FACTORY, 1),
        ("StaleWriteRejected", "", 2),
        ("LeaseGranted", "factory-2", 3),
    ]
    [latest] = dicts(batch, "jobs_latest")
    assert (latest["state"], latest["epoch"], latest["attempts"]) == ("assigned", 3, 2)


def test_the_next_wait_counts_from_a_release() -> None:
    log = Log()
    job = submitted_job()
    job.grant_lease(FACTORY, 60, at(1))
    job.start(1, at(2))
    job.release_lease(1, "shutdown", at(5))
    job.grant_lease("factory-2", 60, at(5.25))
    log.record(job)
    batch = fold_all(log)
    assert dicts(batch, "job_runs") == [
        run(job, attempt=1, epoch=1, factory_id=FACTORY, ready_at=at(0), leased_at=at(1), ended_at=at(5),
            wait_ms=1000.0, run_ms=4000.0, outcome="released", notification_id=103),
    ]  # fmt: skip
    assert batch["run_insights"] == []  # no usage reported
    [latest] = dicts(batch, "jobs_latest")
    assert (latest["state"], latest["factory_id"], latest["attempts"]) == ("assigned", "factory-2", 2)
    # The second lease is still open: its run row comes when it ends, with wait 250 ms
    job.succeed(2, None, None, at(6))
    log.record(job)
    assert [r["wait_ms"] for r in dicts(fold_all(log), "job_runs")] == [1000.0, 250.0]


def test_cancelling_a_running_job_ends_its_run() -> None:
    # Given a running job in a phase
    log = Log()
    job = submitted_job()
    job.grant_lease(FACTORY, 60, at(1))
    job.report_phase(1, "build", at(2))
    # When an operator cancels it and the worker, not yet told, reports success
    job.cancel("not needed", "operator", at(8))
    with pytest.raises(DomainError):
        job.succeed(1, None, None, at(9))
    log.record(job)
    batch = fold_all(log)
    # Then the run ended cancelled, and the late success is a stale write of that lease
    assert [(r["outcome"], r["epoch"], r["factory_id"], r["run_ms"]) for r in dicts(batch, "job_runs")] == [
        ("cancelled", 1, FACTORY, 7000.0),
        ("stale_rejected", 1, FACTORY, 0.0),
    ]
    assert lease_columns(batch)[-2:] == [("JobCancelled", FACTORY, 1), ("StaleWriteRejected", FACTORY, 1)]
    [latest] = dicts(batch, "jobs_latest")
    assert (latest["state"], latest["phase"], latest["factory_id"]) == ("cancelled", "", FACTORY)


def test_cancelling_a_queued_job_ends_no_run() -> None:
    log = Log()
    job = submitted_job()
    job.cancel("not needed", "operator", at(1))
    log.record(job)
    batch = fold_all(log)
    assert batch["job_runs"] == []
    assert lease_columns(batch) == [("JobSubmitted", "", 0), ("JobCancelled", "", 0)]


def test_a_worker_may_succeed_straight_from_assigned() -> None:
    log = Log()
    job = submitted_job()
    job.grant_lease(FACTORY, 60, at(1))
    job.succeed(1, None, RunInsights(turns=1), at(2))
    log.record(job)
    batch = fold_all(log)
    assert [(r["outcome"], r["run_ms"]) for r in dicts(batch, "job_runs")] == [("succeeded", 1000.0)]
    assert [r["turns"] for r in dicts(batch, "run_insights")] == [1]


def test_dead_letter_then_requeue_counts_attempts_on() -> None:
    # Given a fatal failure (dead letter follows in the same command)
    log = Log()
    job = submitted_job()
    job.grant_lease(FACTORY, 60, at(1))
    job.fail(1, failing("oom", retryable=False), None, at(3), jitter_sample=0.5)
    # When an operator requeues it and it runs again
    job.requeue("operator", at(100))
    job.grant_lease(FACTORY, 60, at(101))
    job.fail(2, failing("oom", retryable=False), None, at(102), jitter_sample=0.5)
    log.record(job)
    batch = fold_all(log)
    # Then the second run is attempt 2 and waited from the requeue
    runs = dicts(batch, "job_runs")
    assert [(r["attempt"], r["outcome"], r["error_kind"], r["retryable"]) for r in runs] == [
        (1, "failed", "oom", 0),
        (2, "failed", "oom", 0),
    ]
    assert (runs[1]["ready_at"], runs[1]["wait_ms"]) == (at(100), 1000.0)
    [latest] = dicts(batch, "jobs_latest")
    assert (latest["state"], latest["attempts"]) == ("dead_letter", 2)


def test_an_expiry_on_the_last_attempt_dead_letters() -> None:
    log = Log()
    job = submitted_job(retry={"max_attempts": 1})
    job.grant_lease(FACTORY, 60, at(1))
    job.expire_lease("factory_down", at(2))
    log.record(job)
    batch = fold_all(log)
    assert [r["outcome"] for r in dicts(batch, "job_runs")] == ["expired"]
    [latest] = dicts(batch, "jobs_latest")
    assert (latest["state"], latest["epoch"]) == ("dead_letter", 2)


def test_blocked_then_ready_and_scheduled_then_claimed_late() -> None:
    # Given a blocked job whose dependency is met at 5 s, and a job scheduled for 10 s
    log = Log()
    blocked = submitted_job(deps=(hard_dep(),), deps_met=False)
    scheduled = submitted_job(run_at=at(10).isoformat())
    blocked.unblock(at(5))
    blocked.grant_lease(FACTORY, 60, at(7))
    # When the scheduled one is promoted by a claim only at 30 s
    scheduled.make_ready(at(30))
    scheduled.grant_lease(FACTORY, 60, at(30))
    blocked.succeed(1, None, None, at(8))
    scheduled.succeed(1, None, None, at(31))
    log.record(blocked, scheduled)
    batch = fold_all(log)
    # Then the blocked job waited from its JobReady; the scheduled one from its run_at
    assert [(r["job_id"], r["ready_at"], r["wait_ms"]) for r in dicts(batch, "job_runs")] == [
        (blocked.id, at(5), 2000.0),
        (scheduled.id, at(10), 20000.0),
    ]
    assert [r["state"] for r in dicts(batch, "jobs_latest")] == ["succeeded", "succeeded"]


def test_factory_tenant_and_profile_events() -> None:
    # Given a factory's history, a tenant's and a profile
    log = Log()
    factory = registered_factory(at(0))
    factory.heartbeat(make_report(health=Health.DEGRADED), at(10))
    factory.mark_down(at(100))
    tenant = Tenant.register("globex", at(0))
    tenant.set_quotas(TenantQuotas(max_queued=3), "admin", at(1))
    tenant.refuse_admission("max_queued", limit=3, current=3, requested=1, now=at(2))
    profile = registered_profile(at(3))
    log.record(factory, tenant, profile)
    batch = fold_all(log)
    # Then factory events are fleet-wide and name the factory; tenant events belong to it
    rows = [
        (r["tenant"], r["aggregate"], r["type"], r["factory_id"], r["version"])
        for r in dicts(batch, "fleet_events")
    ]
    assert rows == [
        ("", "factory", "FactoryRegistered", FACTORY, 1),
        ("", "factory", "FactoryHeartbeat", FACTORY, 2),
        ("", "factory", "FactoryMarkedDown", FACTORY, 3),
        ("globex", "tenant", "TenantRegistered", "", 1),
        ("globex", "tenant", "QuotasSet", "", 2),
        ("globex", "tenant", "AdmissionRefused", "", 3),
        ("acme", "profile", "ProfileRegistered", "", 1),
    ]  # fmt: skip
    assert json.loads(batch["fleet_events"][5][-1]) == {
        "quota": "max_queued", "limit": 3, "current": 3, "requested": 1
    }  # fmt: skip
    assert (batch["job_runs"], batch["run_insights"], batch["jobs_latest"]) == ([], [], [])


# -------------------------------------------------------- priming and batches


def test_priming_and_its_refusals() -> None:
    # Given a factory whose registration the fold never saw
    factory = registered_factory(at(0))
    factory.heartbeat(make_report(), at(1))
    factory.heartbeat(make_report(), at(2))
    first, second, third = history(factory)
    fold = AnalyticsFold()
    assert not fold.needs_priming(first.originator_id, 1)
    assert fold.needs_priming(second.originator_id, 2)
    # When applied unprimed, it is refused; primed, it names the factory
    with pytest.raises(NotPrimed):
        fold.apply(1, second)
    fold.prime([first])
    assert fold.take()["fleet_events"] == []
    fold.apply(2, second)
    assert not fold.needs_priming(third.originator_id, 3)
    # And a re-read of a range already folded asks to be primed again
    assert fold.needs_priming(second.originator_id, 2)
    fold.prime([first])
    fold.apply(2, second)
    assert [r["factory_id"] for r in dicts(fold.take(), "fleet_events")] == [FACTORY, FACTORY]


def test_max_contexts_is_positive() -> None:
    with pytest.raises(ValueError, match="max_contexts"):
        AnalyticsFold(max_contexts=0)


def test_an_evicted_context_needs_priming() -> None:
    log = Log()
    jobs = [submitted_job() for _ in range(3)]
    log.record(*jobs)
    fold = AnalyticsFold(max_contexts=2)
    for notification_id, event in log.events:
        fold.apply(notification_id, event)
    assert [fold.needs_priming(job.id, 2) for job in jobs] == [True, False, False]


# ---------------------------------------------------------------- the tables


def test_every_column_is_described_and_every_job_event_has_a_step() -> None:
    assert {t: tuple(d) for t, d in DESCRIPTIONS.items()} == COLUMNS
    assert all(text.strip() for d in DESCRIPTIONS.values() for text in d.values())
    assert set(JOB_TRANSITIONS.rows) - {e.JobSubmitted} == set(_STEPS)


def corpus() -> list[list[DomainEvent]]:
    return [*job_histories(), *factory_histories(), *tenant_histories(), *profile_histories()]


def test_the_corpus_folds_and_a_store_round_trip_changes_no_row() -> None:
    # Given every command tried in every state, through the event store's mapper and not
    mapper = PydanticMapper(transcoder=JSONTextTranscoder())
    live, stored = AnalyticsFold(), AnalyticsFold()
    for events in corpus():
        for event in events:
            live.apply(event.originator_version, event)
            stored.apply(event.originator_version, mapper.to_domain_event(mapper.to_stored_event(event)))
    # Then the rows are the same, of the right width, with UTC times
    batch = live.take()
    assert stored.take() == batch
    assert all(batch[table] for table in ("fleet_events", "job_runs", "jobs_latest"))
    for table, rows in batch.items():
        assert all(len(r) == len(COLUMNS[table]) for r in rows), table
        times = [v for r in rows for v in r if isinstance(v, datetime)]
        assert all(t.tzinfo is UTC for t in times)


# ---------------------------------------------------------------- property

WORKER: dict[str, Callable[[Job, int, datetime], Any]] = {
    "lease": lambda j, n, now: claim(j, f"factory-{n % 3}", now),
    "renew": lambda j, n, now: j.renew_lease(n, None, now),
    "start": lambda j, n, now: j.start(n, now),
    "phase": lambda j, n, now: j.report_phase(n, "build", now),
    "checkpoint": lambda j, n, now: j.save_checkpoint(n, {"n": n}, now),
    "insights": lambda j, n, now: j.report_insights(n, RunInsights(model=f"m-{n}", tokens_in=n), now),
    "succeed": lambda j, n, now: j.succeed(n, None, None, now),
    "succeed_with_usage": lambda j, n, now: j.succeed(n, None, RunInsights(tokens_out=n + 1), now),
    "fail": lambda j, n, now: j.fail(n, failing("flaky"), RunInsights(cost_usd=0.1), now, 0.5),
    "fail_fatal": lambda j, n, now: j.fail(n, failing(retryable=False), None, now, 0.5),
    "release": lambda j, n, now: j.release_lease(n, "shutdown", now),
}


def claim(job: Job, factory_id: str, now: datetime) -> None:
    """What a claim does: promote a due scheduled or retrying job on the way, then lease."""
    if job.state in (JobState.SCHEDULED, JobState.FAILED):
        job.make_ready(now)
    job.grant_lease(factory_id, 60, now)


SERVICE: dict[str, Callable[[Job, datetime], Any]] = {
    "expire": lambda j, now: j.expire_lease("lease_timeout", now),
    "factory_down": lambda j, now: j.expire_lease("factory_down", now),
    "make_ready": lambda j, now: j.make_ready(now),
    "unblock": lambda j, now: j.unblock(now),
    "cancel": lambda j, now: j.cancel("test", "operator", now),
    "requeue": lambda j, now: j.requeue("operator", now),
    "block": lambda j, now: j.block((hard_dep().job_id,), now),
    "supersede": lambda j, now: j.supersede(hard_dep().job_id, now),
    "dependency_failed": lambda j, now: j.dead_letter_for_dependency(hard_dep().job_id, "cancelled", now),
}
steps = st.tuples(
    st.sampled_from(["submit", "heartbeat", "refuse", *["lease"] * 4, *WORKER, *WORKER, *SERVICE]),
    st.integers(0, 5),  # which job
    st.one_of(st.none(), st.none(), st.none(), st.integers(0, 5)),  # None: the holder's; else often stale
    st.sampled_from([0, 0.25, 1, 5, 61, 301]),  # seconds before the step
)
plans = st.lists(steps, min_size=20, max_size=100)


def build_log(plan: list[tuple[str, int, int | None, float]]) -> tuple[Log, list[Job]]:
    """Drive real aggregates through ``plan``; refusals are outcomes (a stale one records)."""
    log, now = Log(), at(0)
    jobs: list[Job] = []
    factory, tenant = registered_factory(now), Tenant.register("acme", now)
    log.record(factory, tenant)
    for name, nth, epoch, seconds in plan:
        now += timedelta(seconds=seconds)
        if name == "submit" or not jobs:
            spec = make_spec(
                run_at=(now + timedelta(seconds=30 * (nth % 3))).isoformat(), retry={"max_attempts": 2}
            )
            jobs.append(Job.submit(job_id=hard_dep().job_id, tenant="acme", spec=spec, deps=(),
                                   deps_met=nth != 4, now=now))  # fmt: skip
        elif name == "heartbeat":
            factory.heartbeat(make_report(load=float(nth)), now)
        elif name == "refuse":
            tenant.refuse_admission("max_queued", limit=1, current=1, requested=nth, now=now)
        elif (job := pick(jobs, nth, name)) is not None:
            holder = job.lease.epoch if job.lease else (job.cancelled_epoch or job.epoch)
            try:
                if name in WORKER:
                    WORKER[name](job, holder if epoch is None else epoch, now)
                else:
                    SERVICE[name](job, now)
            except DomainError:
                pass
        log.record(factory, tenant, *jobs)
    return log, jobs


def pick(jobs: list[Job], nth: int, command: str) -> Job | None:
    """A job the command can apply to: a waiting one to lease, a leased one for a worker's
    write (stale writes come from the epochs drawn), any job for the others."""
    wanted = {"lease": WAITING}.get(command, LEASED if command in WORKER else None)
    fit = [j for j in jobs if wanted is None or j.state in wanted]
    return fit[nth % len(fit)] if fit else None


def consume(log: Log, fold: AnalyticsFold, start: int = 0, cuts: frozenset[int] = frozenset()) -> RowBatch:
    """What the consumer does from the ``start``-th notification on: prime when asked,
    take a batch after each cut; the batches merged (jobs_latest: the last row per job)."""
    merged: RowBatch = {table: [] for table in COLUMNS}
    latest: dict[UUID, tuple[Any, ...]] = {}
    for i, (notification_id, event) in enumerate(log.events[start:], start):
        version = event.originator_version
        if fold.needs_priming(event.originator_id, version):
            fold.prime(ev for ev in log.of(event.originator_id) if ev.originator_version < version)
        fold.apply(notification_id, event)
        if i in cuts or i == len(log.events) - 1:
            batch = fold.take()
            for table in ("fleet_events", "job_runs", "run_insights"):
                merged[table] += batch[table]
            latest.update((r[1], r) for r in batch["jobs_latest"])
    merged["jobs_latest"] = sorted(latest.values(), key=lambda r: r[-1])
    return merged


def after(batch: RowBatch, first_id: int) -> RowBatch:
    """The rows emitted by notifications from ``first_id`` on."""
    at = {table: COLUMNS[table].index("notification_id") for table in COLUMNS}
    return {table: [r for r in rows if r[at[table]] >= first_id] for table, rows in batch.items()}


@settings(max_examples=200)
@given(plan=plans, cuts=st.frozensets(st.integers(0, 80)), data=st.data())
def test_rows_do_not_depend_on_batches_priming_or_eviction(
    plan: Any, cuts: frozenset[int], data: Any
) -> None:
    log, _ = build_log(plan)
    reference = consume(log, AnalyticsFold())
    # Batch boundaries
    assert consume(log, AnalyticsFold(), cuts=cuts) == reference
    # A tiny cache: contexts evicted and primed again all along
    assert consume(log, AnalyticsFold(max_contexts=data.draw(st.integers(1, 2))), cuts=cuts) == reference
    # A fresh fold that starts mid-log (a restart), primed from the log
    start = data.draw(st.integers(0, len(log.events) - 1))
    assert consume(log, AnalyticsFold(), start=start, cuts=cuts) == after(reference, FIRST_ID + start)


@given(plan=plans)
def test_rows_agree_with_the_job_aggregate(plan: Any) -> None:
    log, jobs = build_log(plan)
    batch = consume(log, AnalyticsFold())
    runs, latest = dicts(batch, "job_runs"), {r["job_id"]: r for r in dicts(batch, "jobs_latest")}
    for job in jobs:
        ended = [r for r in job.runs if r.outcome is not None]
        mine = [r for r in runs if r["job_id"] == job.id and r["outcome"] != "stale_rejected"]
        assert [(r.attempt, r.epoch, r.factory_id, r.started_at, r.ended_at, r.outcome, r.error_kind or "")
                for r in ended] == [
            (r["attempt"], r["epoch"], r["factory_id"], r["leased_at"], r["ended_at"], r["outcome"],
             r["error_kind"]) for r in mine
        ]  # fmt: skip
        assert all(r["wait_ms"] >= 0 and r["run_ms"] >= 0 for r in mine)
        usage = [(r["notification_id"], r["cost_usd"], r["tokens_out"]) for r in dicts(batch, "run_insights")
                 if r["job_id"] == job.id]  # fmt: skip
        expected = [(m["notification_id"], r.insights.cost_usd, r.insights.tokens_out)
                    for r, m in zip(ended, mine, strict=True) if r.insights is not None]  # fmt: skip
        assert usage == expected
        row = latest[job.id]
        assert (row["state"], row["phase"], row["epoch"], row["attempts"], row["version"]) == (
            str(job.state), job.phase or "", job.epoch, job.attempt, job.version
        )  # fmt: skip
        assert (row["created_at"], row["updated_at"]) == (job.created_on, job.modified_on)
        assert row["factory_id"] == (job.runs[-1].factory_id if job.runs else "")
    stale = sum(isinstance(ev, e.StaleWriteRejected) for _, ev in log.events)
    assert sum(r["outcome"] == "stale_rejected" for r in runs) == stale
