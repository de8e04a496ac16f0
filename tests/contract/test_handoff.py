"""Submitting straight to a waiting worker (``Fleet.submit_handing_over``): the worker's
claim runs in the submit's own transaction, with the new job among its candidates, and
obeys everything a claim obeys. (The fixture checks after each test that the views equal
the views rebuilt from the log.)"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from adapters.store.unit_of_work import SqlUnitOfWork
from coordinator.claiming import ClaimRequest
from coordinator.errors import Forbidden, QuotaExceeded
from coordinator.fleet import Fleet
from coordinator.identity import Identity, Role
from coordinator.views import ClaimedJob, SubmitResult
from domain.factory import FactoryReport
from domain.job import JobSpec
from tests.contract.helpers import LoopHandOvers, claim, claim_one, history_types, submit
from tests.support import FakeClock, fleet_wide, make_spec, tenant

ACME = tenant("acme")
GLOBEX = tenant("globex")
ADMIN = fleet_wide("admin")


HandOver = Callable[[Fleet, Identity, JobSpec, Identity, ClaimRequest], tuple[SubmitResult, list[ClaimedJob]]]


def _directly(
    fleet: Fleet, who: Identity, spec: JobSpec, worker: Identity, request: ClaimRequest
) -> tuple[SubmitResult, list[ClaimedJob]]:
    return fleet.submit_handing_over(who, spec, worker, request)


_WAY: dict[str, HandOver] = {"hand_over": _directly}


@pytest.fixture(autouse=True, params=["directly", "from-a-loop"])
def way(request: pytest.FixtureRequest, fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test, both as the coordinator's callers make hand-overs and as the HTTP API
    does (from its event loop; on PostgreSQL committed from the loop itself when it can)."""
    if request.param == "directly":
        yield request.param
        return
    loop = LoopHandOvers(fleet)
    monkeypatch.setitem(_WAY, "hand_over", loop)
    try:
        yield request.param
    finally:
        loop.close()


def hand_over(
    fleet: Fleet,
    who: Identity = ACME,
    worker: Identity = ACME,
    factory: str = "f1",
    request: dict[str, Any] | None = None,
    **spec: Any,
) -> tuple[SubmitResult, list[ClaimedJob]]:
    claim_request = ClaimRequest(factory_id=factory, **{"start": True, **(request or {})})
    return _WAY["hand_over"](fleet, who, make_spec(**spec), worker, claim_request)


def test_the_waiting_worker_gets_the_new_job_in_the_submits_transaction(fleet: Fleet) -> None:
    result, claimed = hand_over(fleet)
    assert result.outcome == "created"
    assert [c.job.id for c in claimed] == [result.job.id]
    assert claimed[0].epoch == 1
    assert claimed[0].job.state == "running"
    view = fleet.get(ACME, result.job.id)
    assert view.state == "running"
    assert view.lease is not None and view.lease.factory_id == "f1" and view.lease.epoch == 1
    assert history_types(fleet, ACME, result.job.id) == ["JobSubmitted", "LeaseGranted", "JobStarted"]
    assert fleet.history(ACME, result.job.id)[-1].version == 3
    # Nothing is left in the queue: no other worker can claim it
    assert claim(fleet, ACME, "f2", max_jobs=5) == []
    # The worker reports as with any claim
    fleet.succeed(ACME, result.job.id, 1)
    assert fleet.get(ACME, result.job.id).state == "succeeded"


def test_the_submit_result_shows_the_job_as_committed(fleet: Fleet) -> None:
    result, claimed = hand_over(fleet)
    assert result.job == claimed[0].job == fleet.get(ACME, result.job.id)
    assert result.job.state == "running"


def test_without_start_the_job_is_assigned(fleet: Fleet) -> None:
    result, claimed = hand_over(fleet, request={"start": False})
    assert claimed[0].job.state == "assigned"
    assert history_types(fleet, ACME, result.job.id) == ["JobSubmitted", "LeaseGranted"]


@pytest.mark.parametrize(
    ("spec", "request_"),
    [
        ({"capabilities": ["gpu"]}, {"capabilities": ("cpu",)}),
        ({"queue": "alpha"}, {"queues": ("beta",)}),
        ({"run_at": "2100-01-01T00:00:00Z"}, {}),
    ],
    ids=["capabilities", "queues", "not-due"],
)
def test_a_job_the_worker_may_not_take_stays_queued(
    fleet: Fleet, spec: dict[str, Any], request_: dict[str, Any]
) -> None:
    result, claimed = hand_over(fleet, request=request_, **spec)
    assert claimed == []
    assert fleet.get(ACME, result.job.id).state in ("queued", "scheduled")
    assert history_types(fleet, ACME, result.job.id) in (["JobSubmitted"], ["JobSubmitted", "JobScheduled"])


def test_a_job_with_unmet_dependencies_stays_blocked(fleet: Fleet) -> None:
    first = submit(fleet, ACME, queue="other")
    result, claimed = hand_over(fleet, deps=[str(first)], request={"queues": ("default",)})
    assert claimed == []
    assert fleet.get(ACME, result.job.id).state == "blocked"


def test_another_tenants_worker_never_gets_the_job(fleet: Fleet) -> None:
    result, claimed = hand_over(fleet, who=ACME, worker=GLOBEX)
    assert claimed == []
    assert fleet.get(ACME, result.job.id).state == "queued"
    assert claim_one(fleet, ACME).job.id == result.job.id


def test_a_fleet_wide_worker_gets_any_tenants_job(fleet: Fleet) -> None:
    worker = Identity.of("fleet-worker", None, Role.WORKER)
    result, claimed = hand_over(fleet, worker=worker)
    assert [c.job.id for c in claimed] == [result.job.id]
    assert claimed[0].job.tenant == "acme"


def test_a_better_queued_job_goes_first(fleet: Fleet, clock: FakeClock) -> None:
    urgent = submit(fleet, ACME, priority="critical")
    older = submit(fleet, ACME)
    clock.advance(1)
    result, claimed = hand_over(fleet, request={"max_jobs": 1})
    assert [c.job.id for c in claimed] == [urgent]
    assert fleet.get(ACME, result.job.id).state == "queued"
    # With room for more, the claim takes the best jobs in order, the new one among them
    result2, claimed2 = hand_over(fleet, request={"max_jobs": 2}, priority="high")
    assert [c.job.id for c in claimed2] == [result2.job.id, older]
    assert claim_one(fleet, ACME, "f2").job.id == result.job.id


def test_a_new_job_ranking_below_the_limit_stays_queued(fleet: Fleet, clock: FakeClock) -> None:
    queued = [submit(fleet, ACME) for _ in range(2)]
    clock.advance(1)
    result, claimed = hand_over(fleet, request={"max_jobs": 2})
    assert [c.job.id for c in claimed] == queued
    assert fleet.get(ACME, result.job.id).state == "queued"


def test_the_factorys_seat_limit_holds(fleet: Fleet) -> None:
    fleet.heartbeat(ACME, FactoryReport(factory_id="small", seat_limit=1))
    submit(fleet, ACME)
    claim_one(fleet, ACME, "small")
    result, claimed = hand_over(fleet, factory="small")
    assert claimed == []
    assert fleet.get(ACME, result.job.id).state == "queued"


def test_the_tenants_in_flight_cap_holds(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 1})
    submit(fleet, ACME)
    claim_one(fleet, ACME)
    first, claimed = hand_over(fleet, factory="f2")
    assert claimed == []
    assert fleet.get(ACME, first.job.id).state == "queued"
    fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 3})
    # Room for two: the older queued job first, then the new one
    second, claimed = hand_over(fleet, factory="f2", request={"max_jobs": 5})
    assert [c.job.id for c in claimed] == [first.job.id, second.job.id]


def test_a_down_factory_gets_nothing_and_the_submit_still_commits(fleet: Fleet, clock: FakeClock) -> None:
    fleet.heartbeat(ACME, FactoryReport(factory_id="flaky", heartbeat_timeout_seconds=5))
    clock.advance(6)
    assert fleet.reaper.run_once().factories_down == 1
    result, claimed = hand_over(fleet, factory="flaky")
    assert claimed == []
    assert fleet.get(ACME, result.job.id).state == "queued"


def test_an_identical_resubmit_hands_nothing_over(fleet: Fleet) -> None:
    first, _ = hand_over(fleet, idempotency_key="k1", request={"start": False})
    again, claimed_again = hand_over(fleet, idempotency_key="k1", factory="f2")
    assert again.outcome == "existing" and again.job.id == first.job.id
    assert claimed_again == []
    assert fleet.get(ACME, first.job.id).lease.factory_id == "f1"


def test_a_superseding_submit_hands_the_new_job_over(fleet: Fleet) -> None:
    old = submit(fleet, ACME, idempotency_key="k1", payload={"v": 1})
    result, claimed = hand_over(fleet, idempotency_key="k1", payload={"v": 2})
    assert result.outcome == "superseded" and result.superseded_job_id == old
    assert [c.job.id for c in claimed] == [result.job.id]
    assert fleet.get(ACME, old).state == "superseded"


def test_a_worker_without_the_worker_role_is_refused_before_anything_is_submitted(fleet: Fleet) -> None:
    reader = Identity.of("reader", "acme", Role.READER)
    with pytest.raises(Forbidden):
        hand_over(fleet, worker=reader)
    assert fleet.list_jobs(ACME).jobs == []


def test_a_refused_submit_claims_nothing(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 0})
    submit(fleet, GLOBEX)  # another tenant's job the worker could take
    worker = Identity.of("fleet-worker", None, Role.WORKER)
    with pytest.raises(QuotaExceeded):
        hand_over(fleet, worker=worker)
    # The refused transaction's claim rolled back with it: the other job is still queued
    assert fleet.list_jobs(GLOBEX).jobs[0].state == "queued"


# -- A hand-over after a short claim is decided on the factory as that claim read it, and
# -- the commit checks the guess (one round trip on PostgreSQL: test_round_trips.py). When
# -- the world moved on, the outcome is the one the ordinary claim gives.


@pytest.fixture
def guesses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The factories hand-overs guessed for (each guess is checked by the commit)."""
    seen: list[str] = []
    guard = SqlUnitOfWork.guard_hand_over

    def counting(self: SqlUnitOfWork, factory: str, f: Any, caps: Any) -> None:
        seen.append(factory)
        guard(self, factory, f, caps)

    monkeypatch.setattr(SqlUnitOfWork, "guard_hand_over", counting)
    return seen


def warm(fleet: Fleet, factory: str, **report: Any) -> None:
    """Register ``factory`` and let its worker's claim come back short (nothing queued)."""
    fleet.heartbeat(ACME, FactoryReport(factory_id=factory, **report))
    assert claim(fleet, ACME, factory, max_jobs=5) == []


def test_a_guessed_hand_over_gets_the_job_like_a_read_one(fleet: Fleet, guesses: list[str]) -> None:
    result, claimed = hand_over(fleet)
    assert guesses == []  # the factory's first claim: nothing to guess on
    warm(fleet, "f1")
    result, claimed = hand_over(fleet)
    assert guesses == ["f1"]
    assert [c.job.id for c in claimed] == [result.job.id]
    assert claimed[0].job == fleet.get(ACME, result.job.id)
    assert claimed[0].job.state == "running" and claimed[0].epoch == 1
    assert history_types(fleet, ACME, result.job.id) == ["JobSubmitted", "LeaseGranted", "JobStarted"]


def test_a_guess_past_the_seat_limit_leases_nothing(fleet: Fleet, guesses: list[str]) -> None:
    warm(fleet, "small", seat_limit=1)
    first, claimed = hand_over(fleet, factory="small")
    assert [c.job.id for c in claimed] == [first.job.id]
    second, claimed = hand_over(fleet, factory="small")
    assert claimed == []
    assert guesses == ["small", "small"]  # the second guess missed, and the read claim decided
    assert fleet.get(ACME, second.job.id).state == "queued"


def test_a_guess_with_work_queued_since_takes_the_best_jobs_in_order(fleet: Fleet, clock: FakeClock) -> None:
    warm(fleet, "f1")
    older = submit(fleet, ACME)
    clock.advance(1)
    result, claimed = hand_over(fleet, request={"max_jobs": 2})
    assert [c.job.id for c in claimed] == [older, result.job.id]
    urgent = submit(fleet, ACME, priority="critical")
    clock.advance(1)
    later, claimed = hand_over(fleet, request={"max_jobs": 1})
    assert [c.job.id for c in claimed] == [urgent]
    assert fleet.get(ACME, later.job.id).state == "queued"


def test_a_guess_on_capabilities_the_factory_no_longer_has_leases_nothing(
    fleet: Fleet, guesses: list[str]
) -> None:
    warm(fleet, "f1", capabilities=["gpu"])
    fleet.heartbeat(ACME, FactoryReport(factory_id="f1", capabilities=[]))
    result, claimed = hand_over(fleet, request={"capabilities": None}, capabilities=["gpu"])
    assert claimed == []
    assert guesses == ["f1"]  # guessed on ["gpu"], refused at commit
    assert fleet.get(ACME, result.job.id).state == "queued"


def test_a_guess_on_a_factory_declared_down_since_leases_nothing(
    fleet: Fleet, clock: FakeClock, guesses: list[str]
) -> None:
    warm(fleet, "flaky", heartbeat_timeout_seconds=5)
    clock.advance(6)
    assert fleet.reaper.run_once().factories_down == 1
    result, claimed = hand_over(fleet, factory="flaky")
    assert claimed == []
    assert guesses == ["flaky"]
    assert fleet.get(ACME, result.job.id).state == "queued"


def test_a_guess_never_passes_a_tenants_in_flight_cap(fleet: Fleet) -> None:
    warm(fleet, "f1")
    fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 1})
    first, claimed = hand_over(fleet)
    assert [c.job.id for c in claimed] == [first.job.id]
    second, claimed = hand_over(fleet)
    assert claimed == []
    assert fleet.get(ACME, second.job.id).state == "queued"


def test_concurrent_guesses_never_pass_the_seat_limit(fleet: Fleet, guesses: list[str]) -> None:
    warm(fleet, "small", seat_limit=2)
    barrier = threading.Barrier(6)

    def one(_: int) -> list[ClaimedJob]:
        barrier.wait()
        return hand_over(fleet, factory="small")[1]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    assert sum(len(r) for r in results) == 2
    assert len(guesses) >= 2  # the guesses were made, and the commit refused the extra ones
    states = sorted(j.state for j in fleet.list_jobs(ACME).jobs)
    assert states == ["queued"] * 4 + ["running"] * 2
