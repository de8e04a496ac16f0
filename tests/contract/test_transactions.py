"""``Context.transact``: a unit of work that lost a race or met a briefly unavailable store
runs again from scratch, a bounded number of times; a domain refusal never does."""

from __future__ import annotations

import pytest

from coordinator.errors import Conflict, Unavailable
from coordinator.fleet import Fleet
from coordinator.ports import UnitOfWork
from domain.errors import DomainError, StaleEpoch
from tests.contract.helpers import submit
from tests.support import tenant

ACME = tenant("acme")


def test_a_conflict_runs_the_unit_of_work_again_from_scratch(fleet: Fleet) -> None:
    job = submit(fleet, ACME)
    calls = []

    def work(uow: UnitOfWork) -> str:
        calls.append(uow)
        locked = uow.lock_jobs([job])  # what it decides on is read again each time
        if len(calls) < 3:
            raise Conflict("a concurrent transaction won")
        return str(locked[job].state)

    assert fleet.ctx.transact(work) == "queued"
    assert len(calls) == 3
    assert len({id(u) for u in calls}) == 3  # a fresh unit of work each time


@pytest.mark.parametrize("error", [Conflict("lost again"), Unavailable("store down")])
def test_retries_are_bounded(fleet: Fleet, error: Exception) -> None:
    calls = []

    def work(uow: UnitOfWork) -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        fleet.ctx.transact(work)
    assert len(calls) == fleet.ctx.transaction_attempts


def test_a_domain_refusal_is_not_retried(fleet: Fleet) -> None:
    job = submit(fleet, ACME)
    calls = []

    def work(uow: UnitOfWork) -> None:
        calls.append(1)
        raise StaleEpoch(job_id=job, presented=1, current=2, state="assigned", command="succeed")

    with pytest.raises(DomainError):
        fleet.ctx.transact(work)
    assert calls == [1]
