"""Dependencies: blocked until met, soft milestones, cycles, failure cascades."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from coordinator.fleet import Fleet
from domain.errors import DependencyCycle, DependencyFailed, RequeueRefused, UnknownDependency, UnknownPhase
from domain.job.spec import ErrorInfo
from tests.contract.helpers import claim, claim_one, history_types, submit
from tests.support import FakeClock, make_spec, tenant

ACME = tenant("acme")


def test_a_job_is_blocked_until_its_dependencies_succeed(fleet: Fleet) -> None:
    a = submit(fleet, ACME)
    b = submit(fleet, ACME)
    c = submit(fleet, ACME, deps=[str(a), str(b)])
    assert fleet.get(ACME, c).state == "blocked"
    # Blocked jobs are not claimable
    claimed = claim(fleet, ACME, max_jobs=10)
    assert {x.job.id for x in claimed} == {a, b}
    epochs = {x.job.id: x.epoch for x in claimed}
    fleet.succeed(ACME, a, epochs[a])
    assert fleet.get(ACME, c).state == "blocked"
    fleet.succeed(ACME, b, epochs[b])
    # Claimable once every dependency has succeeded
    assert fleet.get(ACME, c).state == "queued"
    assert history_types(fleet, ACME, c) == ["JobSubmitted", "JobReady"]
    assert claim_one(fleet, ACME).job.id == c


def test_a_dependency_that_already_succeeded_does_not_block(fleet: Fleet) -> None:
    a = submit(fleet, ACME)
    fleet.succeed(ACME, a, claim_one(fleet, ACME).epoch)
    assert fleet.get(ACME, submit(fleet, ACME, deps=[str(a)])).state == "queued"


def test_met_dependencies_with_a_future_run_at_schedule_the_job(fleet: Fleet, clock: FakeClock) -> None:
    a = submit(fleet, ACME)
    b = submit(fleet, ACME, deps=[str(a)], run_at=(clock.now() + timedelta(seconds=60)).isoformat())
    fleet.succeed(ACME, a, claim_one(fleet, ACME).epoch)
    assert fleet.get(ACME, b).state == "scheduled"


def test_soft_dependency_releases_at_the_milestone_phase(fleet: Fleet) -> None:
    a = submit(fleet, ACME, phases=["building", "review", "testing"])
    b = submit(fleet, ACME, deps=[{"job_id": str(a), "mode": "soft", "milestone": "review"}])
    default = submit(fleet, ACME, deps=[str(a)], deps_mode="soft")
    assert [d.milestone for d in fleet.get(ACME, default).deps] == ["testing"]
    c = claim_one(fleet, ACME)
    fleet.report_phase(ACME, a, c.epoch, "building")
    assert fleet.get(ACME, b).state == "blocked"
    fleet.report_phase(ACME, a, c.epoch, "review")
    assert fleet.get(ACME, b).state == "queued"
    assert fleet.get(ACME, default).state == "blocked"
    fleet.report_phase(ACME, a, c.epoch, "testing")
    assert fleet.get(ACME, default).state == "queued"


def test_a_soft_dependency_that_loses_its_milestone_blocks_a_returning_dependent(
    fleet: Fleet, clock: FakeClock
) -> None:
    a = submit(fleet, ACME, phases=["build", "test"], lease_seconds=10)
    b = submit(fleet, ACME, deps=[str(a)], deps_mode="soft", lease_seconds=100)
    ca = claim_one(fleet, ACME)
    fleet.report_phase(ACME, a, ca.epoch, "test")
    cb = claim_one(fleet, ACME)
    assert cb.job.id == b
    clock.advance(11)
    fleet.reaper.run_once()  # a's lease expires: its next attempt starts from scratch
    fleet.release(ACME, b, cb.epoch)
    # b went back to the queue, found its milestone gone, and waits again
    assert fleet.get(ACME, b).state == "blocked"
    assert history_types(fleet, ACME, b)[-2:] == ["LeaseReleased", "JobBlocked"]


def test_unknown_dependencies_and_other_tenants_jobs_are_refused(fleet: Fleet) -> None:
    other = submit(fleet, tenant("globex"))
    missing = uuid.uuid4()
    with pytest.raises(UnknownDependency) as refused:
        fleet.submit(ACME, make_spec(deps=[str(missing), str(other)]))
    assert set(refused.value.to_dict()["ids"]) == {str(missing), str(other)}


def test_a_milestone_the_dependency_does_not_declare_is_refused(fleet: Fleet) -> None:
    a = submit(fleet, ACME, phases=["x"])
    with pytest.raises(UnknownPhase):
        fleet.submit(ACME, make_spec(deps=[{"job_id": str(a), "mode": "soft", "milestone": "y"}]))


def test_a_dead_dependency_is_refused_at_submit(fleet: Fleet) -> None:
    a = submit(fleet, ACME)
    fleet.cancel(ACME, a)
    with pytest.raises(DependencyFailed):
        fleet.submit(ACME, make_spec(deps=[str(a)]))


def test_a_cycle_through_a_supersede_is_refused_and_named(fleet: Fleet) -> None:
    # Given b waiting for a
    a = submit(fleet, ACME, idempotency_key="a", payload={"v": 1})
    b = submit(fleet, ACME, deps=[str(a)])
    # When a is superseded by content that depends on b (b would then wait for it)
    with pytest.raises(DependencyCycle) as refused:
        fleet.submit(ACME, make_spec(idempotency_key="a", payload={"v": 2}, deps=[str(b)]))
    # Then the cycle is named and nothing changed
    cycle = refused.value.fields["cycle"]
    assert cycle[0] == cycle[-1] == "new job (key a)"
    assert str(b) in cycle
    assert fleet.get(ACME, a).state == "queued"
    # And depending on the very job being replaced is a cycle too
    with pytest.raises(DependencyCycle):
        fleet.submit(ACME, make_spec(idempotency_key="a", payload={"v": 3}, deps=[str(a)]))


def test_a_failed_hard_dependency_dead_letters_its_dependents_transitively(fleet: Fleet) -> None:
    a = submit(fleet, ACME, retry={"max_attempts": 1})
    b = submit(fleet, ACME, deps=[str(a)])
    c = submit(fleet, ACME, deps=[str(b)])
    unrelated = submit(fleet, ACME, deps=[str(submit(fleet, ACME))])
    ca = claim_one(fleet, ACME)
    fleet.fail(ACME, a, ca.epoch, ErrorInfo(kind="crash", message="segfault"))
    assert fleet.get(ACME, a).state == "dead_letter"
    for dependent in (b, c):
        view = fleet.get(ACME, dependent)
        assert view.state == "dead_letter"
        assert view.reason is not None and "dependency" in view.reason
    assert history_types(fleet, ACME, b)[-1] == "JobDeadLettered"
    assert fleet.get(ACME, unrelated).state == "blocked"


def test_cancelling_a_dependency_fails_its_dependents(fleet: Fleet) -> None:
    a = submit(fleet, ACME)
    b = submit(fleet, ACME, deps=[str(a)])
    fleet.cancel(ACME, a)
    assert fleet.get(ACME, b).state == "dead_letter"
    # Requeueing the dependent is refused while its dependency is dead
    with pytest.raises(RequeueRefused):
        fleet.requeue(ACME, b)


def test_requeueing_the_dependency_then_the_dependent_recovers(fleet: Fleet) -> None:
    a = submit(fleet, ACME, retry={"max_attempts": 1})
    b = submit(fleet, ACME, deps=[str(a)])
    fleet.fail(ACME, a, claim_one(fleet, ACME).epoch, ErrorInfo(kind="x", retryable=False))
    assert fleet.get(ACME, b).state == "dead_letter"
    fleet.requeue(ACME, a)
    # b waits again for a rather than running
    assert fleet.requeue(ACME, b).state == "blocked"
    fleet.succeed(ACME, a, claim_one(fleet, ACME).epoch)
    assert fleet.get(ACME, b).state == "queued"
