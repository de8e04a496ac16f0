"""Claiming: priority then age, capabilities, seats, queues, run-at, tenant fairness."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from coordinator.errors import FactoryDown
from coordinator.fleet import Fleet
from domain.factory import FactoryReport
from tests.contract.helpers import claim, claim_one, history_types, submit
from tests.support import FakeClock, fleet_wide, tenant

ACME = tenant("acme")


def test_highest_priority_first_then_oldest(fleet: Fleet, clock: FakeClock) -> None:
    low = submit(fleet, ACME, priority="low")
    clock.advance(1)
    old_high = submit(fleet, ACME, priority="high")
    clock.advance(1)
    critical = submit(fleet, ACME, priority="critical")
    clock.advance(1)
    new_high = submit(fleet, ACME, priority=10)
    order = [claim_one(fleet, ACME).job.id for _ in range(4)]
    assert order == [critical, old_high, new_high, low]
    assert claim(fleet, ACME, max_jobs=5) == []


def test_a_batch_claim_takes_many_in_order_in_one_transaction(fleet: Fleet, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(submit(fleet, ACME))
        clock.advance(1)
    claimed = claim(fleet, ACME, max_jobs=3)
    assert [c.job.id for c in claimed] == ids[:3]
    assert {c.epoch for c in claimed} == {1}
    assert all(c.lease_expires_at == clock.now() + timedelta(seconds=60) for c in claimed)


def test_required_capabilities_must_be_a_subset(fleet: Fleet) -> None:
    gpu = submit(fleet, ACME, capabilities=["gpu"])
    gpu_cuda = submit(fleet, ACME, capabilities=["gpu", "cuda"])
    plain = submit(fleet, ACME)
    # A factory with nothing special takes only the plain job
    assert [c.job.id for c in claim(fleet, ACME, "cpu-box", capabilities=(), max_jobs=10)] == [plain]
    # One with gpu but no cuda takes only the gpu job
    assert [c.job.id for c in claim(fleet, ACME, "gpu-box", capabilities=("gpu",), max_jobs=10)] == [gpu]
    # A superset takes the rest
    rest = claim(fleet, ACME, "big-box", capabilities=("cuda", "gpu", "fpga"), max_jobs=10)
    assert [c.job.id for c in rest] == [gpu_cuda]


def test_without_capabilities_a_claim_uses_the_factory_registration(fleet: Fleet) -> None:
    fleet.heartbeat(ACME, FactoryReport(factory_id="gpu-box", capabilities=("gpu",)))
    job = submit(fleet, ACME, capabilities=["gpu"])
    assert claim_one(fleet, ACME, "gpu-box").job.id == job


def test_the_seat_limit_caps_leases_held(fleet: Fleet) -> None:
    fleet.heartbeat(ACME, FactoryReport(factory_id="small", seat_limit=2))
    for _ in range(5):
        submit(fleet, ACME)
    assert len(claim(fleet, ACME, "small", max_jobs=10)) == 2
    assert claim(fleet, ACME, "small", max_jobs=10) == []
    # Finishing one frees one seat
    first = fleet.list_jobs(ACME, states=("assigned",)).jobs[0]
    fleet.succeed(ACME, first.id, first.epoch)
    assert len(claim(fleet, ACME, "small", max_jobs=10)) == 1


def test_queues_filter_claims(fleet: Fleet) -> None:
    a = submit(fleet, ACME, queue="alpha")
    b = submit(fleet, ACME, queue="beta")
    assert [c.job.id for c in claim(fleet, ACME, queues=("beta",), max_jobs=5)] == [b]
    assert [c.job.id for c in claim(fleet, ACME, queues=("alpha", "gamma"), max_jobs=5)] == [a]


def test_run_at_in_the_future_waits(fleet: Fleet, clock: FakeClock) -> None:
    later = (clock.now() + timedelta(seconds=30)).isoformat()
    job = submit(fleet, ACME, run_at=later)
    assert fleet.get(ACME, job).state == "scheduled"
    assert claim(fleet, ACME, max_jobs=5) == []
    clock.advance(31)
    # The claim promotes the due job on the way (no scheduler pass needed)
    claimed = claim_one(fleet, ACME)
    assert claimed.job.id == job
    assert history_types(fleet, ACME, job) == ["JobSubmitted", "JobReady", "LeaseGranted"]


def test_the_scheduler_promotes_due_jobs(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, run_at=(clock.now() + timedelta(seconds=10)).isoformat())
    assert fleet.scheduler.run_once().promoted == 0
    clock.advance(11)
    assert fleet.scheduler.run_once().promoted == 1
    assert fleet.get(ACME, job).state == "queued"
    assert fleet.scheduler.run_once().promoted == 0


def test_tenants_take_turns(fleet: Fleet, clock: FakeClock) -> None:
    # Given a big backlog of critical work for one tenant and a little low-priority work for two others
    big, small, tiny = tenant("big"), tenant("small"), tenant("tiny")
    for _ in range(20):
        submit(fleet, big, priority="critical")
    clock.advance(1)
    for _ in range(3):
        submit(fleet, small, priority="low")
        submit(fleet, tiny, priority="low")
    worker = fleet_wide("worker")
    # When a fleet-wide worker claims one job at a time
    served = [claim_one(fleet, worker, "w").job.tenant for _ in range(9)]
    # Then the tenants alternate: the big backlog cannot starve the others
    assert Counter(served) == {"big": 3, "small": 3, "tiny": 3}
    assert len(set(served[0:3])) == 3 and len(set(served[3:6])) == 3
    # And a batch claim interleaves tenants while both have work, then fills from the rest
    for _ in range(2):
        submit(fleet, small, priority="critical")
    batch = [c.job.tenant for c in claim(fleet, worker, "w", max_jobs=6)]
    assert Counter(batch) == {"big": 4, "small": 2}
    assert set(batch[0:2]) == set(batch[2:4]) == {"big", "small"}


def test_a_tenant_arriving_after_another_had_the_fleet_alone_gets_its_turn(
    fleet: Fleet, clock: FakeClock
) -> None:
    # Given one tenant alone with work, served by a fleet-wide worker for a while
    # (its claims then lock that tenant's jobs ahead, with the factory)
    alone, newcomer = tenant("alone"), tenant("newcomer")
    backlog = [submit(fleet, alone, priority="low") for _ in range(6)]
    clock.advance(1)
    urgent = submit(fleet, alone, priority="critical")
    worker = fleet_wide("worker")
    assert claim_one(fleet, worker, "w").job.id == urgent
    assert claim_one(fleet, worker, "w").job.id == backlog[0]
    # When another tenant's work arrives
    clock.advance(1)
    theirs = submit(fleet, newcomer, priority="low")
    # Then the next claim serves both, each tenant's best job first
    batch = claim(fleet, worker, "w", max_jobs=2)
    assert {c.job.id for c in batch} == {backlog[1], theirs}
    # And with the newcomer served, the rest of the backlog comes in order
    assert [c.job.id for c in claim(fleet, worker, "w", max_jobs=10)] == backlog[2:]


def test_a_down_factory_cannot_claim_until_it_heartbeats(fleet: Fleet, clock: FakeClock) -> None:
    fleet.heartbeat(ACME, FactoryReport(factory_id="flaky", heartbeat_timeout_seconds=5))
    submit(fleet, ACME)
    clock.advance(6)
    assert fleet.reaper.run_once().factories_down == 1
    with pytest.raises(FactoryDown):
        claim(fleet, ACME, "flaky")
    fleet.heartbeat(ACME, FactoryReport(factory_id="flaky", heartbeat_timeout_seconds=5))
    assert len(claim(fleet, ACME, "flaky")) == 1


def test_claim_leases_carry_the_claims_lease_length(fleet: Fleet, clock: FakeClock) -> None:
    submit(fleet, ACME, lease_seconds=100)
    submit(fleet, ACME, lease_seconds=100)
    default = claim_one(fleet, ACME)
    shorter = claim_one(fleet, ACME, lease_seconds=7)
    assert default.lease_expires_at == clock.now() + timedelta(seconds=100)
    assert shorter.lease_expires_at == clock.now() + timedelta(seconds=7)


def test_a_claim_can_start_its_jobs_in_the_same_transaction(fleet: Fleet) -> None:
    job = submit(fleet, ACME)
    claimed = claim_one(fleet, ACME, start=True)
    assert claimed.job.state == "running"
    assert history_types(fleet, ACME, job) == ["JobSubmitted", "LeaseGranted", "JobStarted"]
