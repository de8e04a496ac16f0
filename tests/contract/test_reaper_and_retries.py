"""The reaper, heartbeats, retries with backoff, dead letter, cancel and requeue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coordinator.fleet import Fleet
from domain.errors import IllegalTransition
from domain.factory import FactoryReport
from domain.job.spec import ErrorInfo
from tests.contract.helpers import claim, claim_one, history_types, submit
from tests.support import FakeClock, fleet_wide, tenant

ACME = tenant("acme")


def test_an_expired_lease_returns_the_job_with_its_checkpoint(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, lease_seconds=10)
    c = claim_one(fleet, ACME, "host-a")
    fleet.checkpoint(ACME, job, c.epoch, {"page": 42})
    clock.advance(10.5)
    result = fleet.reaper.run_once()
    assert (result.expired, result.requeued) == (1, 1)
    view = fleet.get(ACME, job)
    assert (view.state, view.lease, view.checkpoint) == ("queued", None, {"page": 42})
    assert view.epoch == c.epoch + 1  # the expiry itself fences the old holder
    expired = fleet.history(ACME, job)[-1]
    assert expired.type == "LeaseExpired"
    assert expired.data["reason"] == "lease_timeout" and expired.data["epoch"] == c.epoch
    assert fleet.runs(ACME, job)[0].outcome == "expired"
    # The next holder resumes from the checkpoint under a higher epoch
    again = claim_one(fleet, ACME, "host-b")
    assert again.job.checkpoint == {"page": 42} and again.epoch > view.epoch


def test_reaping_twice_changes_nothing_the_second_time(fleet: Fleet, clock: FakeClock) -> None:
    for _ in range(3):
        submit(fleet, ACME, lease_seconds=5)
    claim(fleet, ACME, max_jobs=3)
    clock.advance(6)
    assert fleet.reaper.run_once().expired == 3
    versions = [j.updated_at for j in fleet.list_jobs(ACME).jobs]
    assert fleet.reaper.run_once().expired == 0
    assert [j.updated_at for j in fleet.list_jobs(ACME).jobs] == versions


def test_leases_expire_only_after_their_time(fleet: Fleet, clock: FakeClock) -> None:
    submit(fleet, ACME, lease_seconds=10)
    claim_one(fleet, ACME)
    clock.advance(9.9)
    assert fleet.reaper.run_once().expired == 0


def test_the_reaper_dead_letters_on_the_last_attempt(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, lease_seconds=5, retry={"max_attempts": 2})
    for _ in range(2):
        claim_one(fleet, ACME)
        clock.advance(6)
        fleet.reaper.run_once()
    view = fleet.get(ACME, job)
    assert view.state == "dead_letter"
    assert view.reason is not None and view.reason.startswith("attempts_exhausted")
    assert history_types(fleet, ACME, job)[-2:] == ["LeaseExpired", "JobDeadLettered"]


def test_a_silent_factory_is_marked_down_and_its_leases_reaped(fleet: Fleet, clock: FakeClock) -> None:
    worker = fleet_wide("worker")
    fleet.heartbeat(worker, FactoryReport(factory_id="host-a", heartbeat_timeout_seconds=15, load=0.5))
    job = submit(fleet, ACME, lease_seconds=600)
    claim_one(fleet, ACME, "host-a")
    clock.advance(10)
    fleet.heartbeat(
        worker, FactoryReport(factory_id="host-a", heartbeat_timeout_seconds=15, health="degraded")
    )
    [host] = fleet.list_factories(worker)
    assert (host.health, host.stale, host.last_heartbeat_at) == ("degraded", False, clock.now())
    clock.advance(16)
    assert fleet.list_factories(worker)[0].stale
    # The lease is far from expiring, but its factory went silent
    result = fleet.reaper.run_once()
    assert (result.factories_down, result.expired) == (1, 1)
    assert fleet.list_factories(worker)[0].health == "down"
    assert fleet.history(ACME, job)[-1].data["reason"] == "factory_down"
    assert fleet.reaper.run_once().factories_down == 0


def test_retryable_failures_back_off_exponentially_then_dead_letter(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(
        fleet,
        ACME,
        retry={
            "max_attempts": 3,
            "backoff": "exponential",
            "base_seconds": 10,
            "max_seconds": 15,
            "jitter": 0,
        },
    )
    delays = []
    for attempt in (1, 2, 3):
        c = claim_one(fleet, ACME)
        assert c.job.attempts == attempt
        fleet.fail(ACME, job, c.epoch, ErrorInfo(kind="timeout", message=f"try {attempt}"))
        view = fleet.get(ACME, job)
        if attempt < 3:
            assert view.state == "failed"
            assert view.available_at is not None
            delays.append((view.available_at - clock.now()).total_seconds())
            assert claim(fleet, ACME) == []  # not before its retry time
            clock.advance(delays[-1])
    assert delays == [10, 15]  # 10, then 20 capped at 15
    view = fleet.get(ACME, job)
    assert view.state == "dead_letter" and view.error is not None and view.error.kind == "timeout"
    assert [r.outcome for r in fleet.runs(ACME, job)] == ["failed", "failed", "failed"]


def test_jitter_spreads_retries_within_bounds(fleet: Fleet, clock: FakeClock) -> None:
    spreads = set()
    for _ in range(6):
        job = submit(fleet, ACME, retry={"base_seconds": 100, "max_seconds": 1000, "jitter": 0.5})
        c = claim(fleet, ACME, max_jobs=1)[0]
        fleet.fail(ACME, job, c.epoch, ErrorInfo(kind="x"))
        delay = (fleet.get(ACME, job).available_at - clock.now()).total_seconds()
        assert 50 <= delay <= 150
        spreads.add(round(delay, 3))
    assert len(spreads) > 1


def test_non_retryable_kinds_dead_letter_at_once(fleet: Fleet) -> None:
    explicit = submit(fleet, ACME)
    listed = submit(fleet, ACME, retry={"retry_on": ["timeout"]})
    fleet.fail(ACME, explicit, claim_one(fleet, ACME).epoch, ErrorInfo(kind="bad_input", retryable=False))
    fleet.fail(ACME, listed, claim_one(fleet, ACME).epoch, ErrorInfo(kind="oom"))
    for job in (explicit, listed):
        view = fleet.get(ACME, job)
        assert (
            view.state == "dead_letter"
            and view.reason is not None
            and view.reason.startswith("non_retryable")
        )


def test_the_scheduler_brings_failed_jobs_back_when_due(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, retry={"base_seconds": 5, "jitter": 0})
    fleet.fail(ACME, job, claim_one(fleet, ACME).epoch, ErrorInfo(kind="x"))
    clock.advance(5)
    assert fleet.scheduler.run_once().promoted == 1
    assert fleet.get(ACME, job).state == "queued"
    assert history_types(fleet, ACME, job)[-1] == "JobReady"


def test_requeue_gives_a_dead_letter_a_fresh_set_of_attempts(fleet: Fleet) -> None:
    job = submit(fleet, ACME, retry={"max_attempts": 1})
    fleet.fail(ACME, job, claim_one(fleet, ACME).epoch, ErrorInfo(kind="x"))
    assert fleet.get(ACME, job).state == "dead_letter"
    view = fleet.requeue(ACME, job)
    assert view.state == "queued" and view.max_attempts == 2
    c = claim_one(fleet, ACME)
    assert c.job.attempts == 2
    fleet.succeed(ACME, job, c.epoch)
    with pytest.raises(IllegalTransition):
        fleet.requeue(ACME, job)


@pytest.mark.parametrize(
    "state", ["blocked", "scheduled", "queued", "assigned", "running", "failed", "dead_letter"]
)
def test_any_unfinished_job_can_be_cancelled(fleet: Fleet, clock: FakeClock, state: str) -> None:
    dep = submit(fleet, ACME, queue="deps")
    if state == "blocked":
        job = submit(fleet, ACME, deps=[str(dep)])
    elif state == "scheduled":
        job = submit(fleet, ACME, run_at=(clock.now() + timedelta(hours=1)).isoformat())
    else:
        job = submit(fleet, ACME, retry={"max_attempts": 1 if state == "dead_letter" else 3})
        if state != "queued":
            c = claim_one(fleet, ACME, queues=("default",))
            if state == "running":
                fleet.start(ACME, job, c.epoch)
            elif state in ("failed", "dead_letter"):
                fleet.fail(ACME, job, c.epoch, ErrorInfo(kind="x"))
    assert fleet.get(ACME, job).state == state
    view = fleet.cancel(ACME, job, "changed my mind")
    assert (view.state, view.reason) == ("cancelled", "changed my mind")
    assert claim(fleet, ACME, queues=("default",), max_jobs=5) == []
