"""The worker runtime against real stores (SQLite and PostgreSQL), on the real clock:
claiming for free slots, batched completions, fenced reports, lease renewal,
cancellation, graceful stop, failures and retries, and LISTEN wake-ups."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from pydantic import JsonValue

from adapters.bootstrap import Settings, build_app
from adapters.worker import JobContext, LeaseLost, NonRetryable
from adapters.worker.completer import Completer
from adapters.worker.examples import noop
from adapters.worker.stats import StatsRecorder
from coordinator.claiming import ClaimRequest
from coordinator.errors import Unavailable
from coordinator.fleet import Fleet
from coordinator.reporting import Completion
from coordinator.views import JobView, RenewResult
from domain.job.spec import RunInsights
from tests.integration.worker_helpers import (
    SUBMITTER,
    RecordingPort,
    config,
    events,
    reaper_running,
    running_worker,
    state,
    types,
    wait_until,
)

SHORT_LEASE = 0.6
"""Seconds; renewed every 0.2 s at the default renew fraction."""


@pytest.fixture
def live_fleet(backend: Settings) -> Iterator[Fleet]:
    """A fleet on the real clock (the worker's timing is real)."""
    if backend.database_url:
        backend = backend.model_copy(update={"pool_size": 12, "max_overflow": 8})
    app = build_app(backend)
    try:
        yield app
    finally:
        app.close()


def test_a_batch_of_noop_jobs_each_succeeds_once_with_batched_completions(live_fleet: Fleet) -> None:
    # Given 40 queued no-op jobs
    submitted = live_fleet.submit_many(SUBMITTER, [{"queue": "noop"} for _ in range(40)])
    ids = [r.job_id for r in submitted if r.job_id is not None]
    port = RecordingPort(live_fleet)

    # When a worker with 8 slots drains them
    with running_worker(live_fleet, {"noop": noop}, port=port, concurrency=8, completion_flush_ms=50) as w:
        wait_until(lambda: w.stats.succeeded == 40, what="40 successes")

    # Then every job succeeded exactly once, under one lease
    for job_id in ids:
        kinds = types(live_fleet, job_id)
        assert kinds.count("LeaseGranted") == 1
        assert kinds.count("JobSucceeded") == 1
        assert state(live_fleet, job_id) == "succeeded"
    # And completion transactions carried several jobs each
    assert sum(port.batches) == 40
    assert max(port.batches) > 1
    assert len(port.batches) < 40
    assert w.stats.claimed == 40
    assert w.stats.lost == w.stats.failed == w.stats.released == 0


def test_checkpoint_phase_and_insights_are_reported_under_the_lease(live_fleet: Fleet) -> None:
    # Given a job with declared phases
    job = live_fleet.submit(SUBMITTER, {"queue": "etl", "phases": ["fetch", "parse"]}).job

    def handler(view: JobView, ctx: JobContext) -> JsonValue:
        ctx.phase("parse")
        ctx.checkpoint({"done": 1})
        ctx.insights(RunInsights(model="demo-model", tokens_in=10, cost_usd=0.01))
        return {"rows": 3}

    # When a worker runs it
    with running_worker(live_fleet, {"etl": handler}) as w:
        wait_until(lambda: w.stats.succeeded == 1, what="the job to succeed")

    # Then its history shows each report, in order, under the job's only epoch
    kinds = types(live_fleet, job.id)
    assert kinds == [
        "JobSubmitted",
        "LeaseGranted",
        "JobStarted",
        "PhaseReported",
        "Checkpointed",
        "InsightsReported",
        "JobSucceeded",
    ]
    view = live_fleet.get(SUBMITTER, job.id)
    assert view.checkpoint == {"done": 1}
    assert view.result == {"rows": 3}
    [run] = live_fleet.runs(SUBMITTER, job.id)
    assert run.outcome == "succeeded"
    assert run.insights is not None and run.insights.tokens_in == 10


def test_a_job_running_longer_than_its_lease_stays_alive_through_renewals(live_fleet: Fleet) -> None:
    # Given a job whose lease is much shorter than its work
    job = live_fleet.submit(SUBMITTER, {"queue": "slow", "lease_seconds": SHORT_LEASE}).job

    def slow(view: JobView, ctx: JobContext) -> JsonValue:
        time.sleep(3 * SHORT_LEASE)
        return "done"

    # When a worker runs it while the reaper keeps looking for expired leases
    with reaper_running(live_fleet), running_worker(live_fleet, {"slow": slow}) as w:
        wait_until(lambda: w.stats.succeeded == 1, what="the slow job to succeed")

    # Then renewals kept the lease: never expired, one attempt, no refused writes
    kinds = types(live_fleet, job.id)
    assert kinds.count("LeaseRenewed") >= 2
    assert "LeaseExpired" not in kinds
    assert "StaleWriteRejected" not in kinds
    assert kinds.count("LeaseGranted") == 1
    assert live_fleet.get(SUBMITTER, job.id).result == "done"


def test_cancel_while_running_stops_the_handler_and_writes_no_result(live_fleet: Fleet) -> None:
    # Given a running job whose handler waits to be told to stop
    job = live_fleet.submit(SUBMITTER, {"queue": "slow", "lease_seconds": SHORT_LEASE}).job
    saw_cancel = threading.Event()

    def patient(view: JobView, ctx: JobContext) -> JsonValue:
        if ctx.cancelled.wait(10):
            saw_cancel.set()
        return "finished anyway"

    with running_worker(live_fleet, {"slow": patient}) as w:
        wait_until(lambda: state(live_fleet, job.id) == "running", what="the job to start")

        # When the submitter cancels it
        live_fleet.cancel(SUBMITTER, job.id, "changed my mind")

        # Then the next renewal tells the handler, and its result is dropped
        assert saw_cancel.wait(5), "the handler never saw ctx.cancelled"
        wait_until(lambda: w.stats.cancelled == 1, what="the worker to count the cancel")

    view = live_fleet.get(SUBMITTER, job.id)
    assert view.state == "cancelled"
    assert view.result is None
    kinds = types(live_fleet, job.id)
    assert "JobSucceeded" not in kinds
    assert "StaleWriteRejected" not in kinds  # the worker never tried to write it
    assert w.stats.succeeded == 0


class StallingPort(RecordingPort):
    """The real port, except that renewals fail as if the store were unreachable
    while ``stalled`` is set (this worker's leases then run out)."""

    def __init__(self, fleet: Fleet):
        super().__init__(fleet)
        self.stalled = threading.Event()

    def renew(self, job_id: UUID, epoch: int, lease_seconds: float | None) -> RenewResult:
        if self.stalled.is_set():
            raise Unavailable("renewals stalled by the test")
        return super().renew(job_id, epoch, lease_seconds)


def test_a_lost_lease_stops_the_handler_and_its_outcome_is_never_reported(live_fleet: Fleet) -> None:
    # Given a worker whose renewals stall, running a job with a short lease
    port = StallingPort(live_fleet)
    port.stalled.set()
    job = live_fleet.submit(SUBMITTER, {"queue": "slow", "lease_seconds": SHORT_LEASE}).job
    lost = threading.Event()

    def checkpoints_until_stopped(view: JobView, ctx: JobContext) -> JsonValue:
        if view.attempts > 1:
            return f"attempt {view.attempts}"
        try:
            for n in range(100):
                ctx.checkpoint({"done": n})
                time.sleep(0.1)
        except LeaseLost:
            lost.set()
            port.stalled.clear()  # the store is back: the job's next attempt can renew
            raise
        return "attempt 1 should never be reported"

    # When the lease runs out and the reaper expires it
    with (
        reaper_running(live_fleet),
        running_worker(live_fleet, {"slow": checkpoints_until_stopped}, port=port) as w,
    ):
        assert lost.wait(10), "the handler never learned that its lease was lost"
        wait_until(lambda: state(live_fleet, job.id) == "succeeded", what="the job's second attempt")

    # Then the first attempt's next write was refused and its outcome never reported
    [expired] = events(live_fleet, job.id, "LeaseExpired")
    refused = events(live_fleet, job.id, "StaleWriteRejected")
    assert {r.data["presented_epoch"] for r in refused} == {expired.data["epoch"]}
    assert "checkpoint" in {r.data["command"] for r in refused}
    [success] = events(live_fleet, job.id, "JobSucceeded")
    assert success.data["epoch"] > expired.data["epoch"]
    assert success.data["result"] == "attempt 2"
    assert w.stats.lost == 1 and w.stats.succeeded == 1


def test_graceful_stop_finishes_short_jobs_and_releases_long_ones(live_fleet: Fleet) -> None:
    # Given a short and a long job, both running on a worker with a 1 s grace period
    short = live_fleet.submit(SUBMITTER, {"queue": "short"}).job
    long = live_fleet.submit(SUBMITTER, {"queue": "long"}).job
    released = threading.Event()

    def quick(view: JobView, ctx: JobContext) -> JsonValue:
        time.sleep(0.3)
        return "quick"

    def endless(view: JobView, ctx: JobContext) -> JsonValue:
        if ctx.cancelled.wait(30):
            released.set()
        return "never reported"

    handlers = {"short": quick, "long": endless}
    with running_worker(live_fleet, handlers, concurrency=2, grace_seconds=1.0) as w:
        wait_until(
            lambda: state(live_fleet, short.id) == state(live_fleet, long.id) == "running",
            what="both jobs running",
        )

        # When the worker stops
        began = time.monotonic()
        w.shutdown()
        took = time.monotonic() - began

    # Then the short job finished within the grace period and the long one was released
    assert state(live_fleet, short.id) == "succeeded"
    [release] = events(live_fleet, long.id, "LeaseReleased")
    assert release.data["reason"] == "worker shutting down"
    assert state(live_fleet, long.id) == "queued"
    assert released.is_set()
    assert "StaleWriteRejected" not in types(live_fleet, long.id)
    assert w.stats.released == 1 and w.stats.succeeded == 1
    assert took < 3.0


def test_handler_errors_retry_then_dead_letter_with_their_kind(live_fleet: Fleet) -> None:
    # Given a job that always raises ValueError (two attempts allowed) and one that
    # raises NonRetryable
    retry = {"max_attempts": 2, "base_seconds": 0.05, "max_seconds": 0.1}
    flaky = live_fleet.submit(SUBMITTER, {"queue": "flaky", "retry": retry}).job
    broken = live_fleet.submit(SUBMITTER, {"queue": "broken"}).job

    def raises(view: JobView, ctx: JobContext) -> JsonValue:
        raise ValueError("boom")

    def refuses(view: JobView, ctx: JobContext) -> JsonValue:
        raise NonRetryable("bad-input", "cannot parse the payload")

    # When a worker runs them until they settle
    with running_worker(live_fleet, {"flaky": raises, "broken": refuses}) as w:
        wait_until(
            lambda: state(live_fleet, flaky.id) == state(live_fleet, broken.id) == "dead_letter",
            what="both jobs dead-lettered",
        )

    # Then the retryable one failed twice with kind value_error, then ran out of attempts
    failures = events(live_fleet, flaky.id, "AttemptFailed")
    assert [f.data["error"]["kind"] for f in failures] == ["value_error", "value_error"]
    assert all(f.data["error"]["retryable"] for f in failures)
    assert failures[0].data["error"]["message"] == "boom"
    [dead] = events(live_fleet, flaky.id, "JobDeadLettered")
    assert dead.data["reason"] == "attempts_exhausted"
    # And the non-retryable one failed once, for good, with its own kind
    [failure] = events(live_fleet, broken.id, "AttemptFailed")
    assert failure.data["error"] == {
        "kind": "bad-input",
        "message": "cannot parse the payload",
        "retryable": False,
    }
    [dead] = events(live_fleet, broken.id, "JobDeadLettered")
    assert dead.data["reason"] == "non_retryable"
    assert w.stats.failed == 3


@pytest.mark.postgres
def test_a_submit_wakes_an_idle_postgres_worker_within_milliseconds(pg_database: str) -> None:
    # Given an idle worker whose own poll is 30 s away (only a notification can wake it)
    fleet = build_app(Settings(database_url=pg_database, pool_size=4, max_overflow=4))
    quiet = {"idle_poll_seconds": 30.0, "heartbeat_interval": 20.0, "heartbeat_timeout": 60.0}
    try:
        with running_worker(fleet, {"noop": noop}, None, claim_cooldown_seconds=0, **quiet) as w:
            time.sleep(0.5)  # let its first (empty) claim pass; it now waits on LISTEN
            latencies: list[float] = []
            for n in range(1, 4):
                # When a job is submitted
                job = fleet.submit(SUBMITTER, {"queue": "noop"}).job
                # Then the worker claims it within milliseconds
                wait_until(lambda: w.stats.claimed >= len(latencies) + 1, timeout=5, what=f"claim {n}")
                [granted] = events(fleet, job.id, "LeaseGranted")
                latencies.append((granted.at - job.created_at).total_seconds())
                wait_until(lambda: w.stats.succeeded >= len(latencies), timeout=5, what=f"success {n}")
                time.sleep(0.2)  # idle again
            assert max(latencies) < 0.2, latencies
    finally:
        fleet.close()


def test_prefetch_claims_ahead_of_the_handler_threads(live_fleet: Fleet) -> None:
    # Given 30 queued short jobs and a worker with 2 handler threads and 6 leases of prefetch
    submitted = live_fleet.submit_many(SUBMITTER, [{"queue": "noop"} for _ in range(30)])
    ids = [r.job_id for r in submitted if r.job_id is not None]
    port = RecordingPort(live_fleet)
    # When it drains them
    with running_worker(live_fleet, {"noop": noop}, port=port, concurrency=2, prefetch=6) as w:
        wait_until(lambda: w.stats.succeeded == 30, what="30 successes")
    # Then claims took more jobs than there are threads, and each job ran once
    assert max(port.claims) > 2
    for job_id in ids:
        history_types = types(live_fleet, job_id)
        assert history_types.count("JobSucceeded") == 1
        # (a prefetching claim cannot say which job starts at once: none records a start)
        assert "JobStarted" not in history_types


def test_the_completer_sends_at_once_when_idle_batches_under_load_and_flushes_everything_on_stop(
    live_fleet: Fleet,
) -> None:
    # Given 8 claimed jobs and a completer that sends at most one batch per 0.3 s, 3 outcomes at most
    live_fleet.submit_many(SUBMITTER, [{"queue": "noop"} for _ in range(8)])
    port = RecordingPort(live_fleet)
    claimed = list(port.claim(ClaimRequest(factory_id="f", max_jobs=8)))
    stats = StatsRecorder()
    completer = Completer(port, config(completion_flush_ms=300, completion_batch_max=3), stats)
    thread = threading.Thread(target=completer.run)
    thread.start()
    outcomes = [Completion(job_id=c.job.id, epoch=c.epoch, outcome="succeeded") for c in claimed]
    try:
        # When an outcome comes after a quiet spell: it goes at once, alone
        started = time.monotonic()
        completer.submit(outcomes[0])
        wait_until(lambda: port.batches == [1], timeout=2, what="the first outcome")
        assert time.monotonic() - started < 0.25
        # Two more within the flush time wait for it to pass, then go together
        answered = time.monotonic()
        completer.submit(outcomes[1])
        completer.submit(outcomes[2])
        time.sleep(0.1)
        assert port.batches == [1]
        wait_until(lambda: port.batches == [1, 2], timeout=2, what="the second batch")
        assert time.monotonic() - answered >= 0.25
        # A full batch goes at once, without waiting the flush time
        started = time.monotonic()
        for outcome in outcomes[3:6]:
            completer.submit(outcome)
        wait_until(lambda: port.batches == [1, 2, 3], timeout=2, what="the full batch")
        assert time.monotonic() - started < 0.25
        # And a stop flushes what is pending at once
        completer.submit(outcomes[6])
    finally:
        completer.stop()
        thread.join(5)
    assert not thread.is_alive() and port.batches == [1, 2, 3, 1]
    # After the stop, an outcome is sent by its caller
    completer.submit(outcomes[7])
    assert port.batches == [1, 2, 3, 1, 1]
    assert stats.snapshot().succeeded == 8
    assert all(state(live_fleet, c.job.id) == "succeeded" for c in claimed)
    port.close()


class ThreadRecordingPort(RecordingPort):
    """Remembers which thread claimed each job."""

    def __init__(self, fleet: Fleet):
        super().__init__(fleet)
        self.claimed_on: dict[UUID, str] = {}

    def claim(self, request: Any) -> Any:
        claimed = super().claim(request)
        for c in claimed:
            self.claimed_on[c.job.id] = threading.current_thread().name
        return claimed


def test_a_job_claimed_with_a_seat_free_runs_on_the_thread_that_claimed_it(live_fleet: Fleet) -> None:
    # Given a worker with 2 handler seats, and a handler that notes its thread
    ran_on: dict[UUID, str] = {}

    def note(view: JobView, ctx: JobContext) -> JsonValue:
        ran_on[view.id] = threading.current_thread().name
        return None

    port = ThreadRecordingPort(live_fleet)
    with running_worker(live_fleet, {"noop": note}, port=port, concurrency=2) as w:
        # When jobs come one at a time
        for n in range(1, 11):
            live_fleet.submit(SUBMITTER, {"queue": "noop"})
            wait_until(lambda n=n: w.stats.succeeded >= n, timeout=5, what=f"success {n}")
    # Then each ran on the thread that claimed it: no hop to another thread before it starts
    assert len(ran_on) == 10
    assert ran_on == {job_id: port.claimed_on[job_id] for job_id in ran_on}
