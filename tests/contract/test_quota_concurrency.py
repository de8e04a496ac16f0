"""Quotas are exact under concurrency: real threads, each with its own pooled connection,
against PostgreSQL (row locks and advisory locks are what is under test; SQLite's single
writer serialises everything by construction)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.bootstrap import Settings
from coordinator.errors import QuotaExceeded
from coordinator.fleet import Fleet
from tests.contract.helpers import claim, submit
from tests.support import FakeClock, build_fleet, fleet_wide, make_spec, tenant

pytestmark = pytest.mark.postgres

THREADS = 8
ACME = tenant("acme")
ADMIN = fleet_wide("admin")


@pytest.fixture
def wide_fleet(pg_database: str, clock: FakeClock) -> Iterator[Fleet]:
    fleet = build_fleet(Settings(database_url=pg_database, pool_size=THREADS + 2, max_overflow=4), clock)
    try:
        yield fleet
        report = fleet.verify_projections(ADMIN)
        assert report.ok, [d.describe() for d in report.differences]
    finally:
        fleet.close()


def race(action: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Run ``action(i)`` on ``threads`` threads released together; their results (or the
    exceptions they raised), in thread order."""
    start = threading.Barrier(threads)
    results: list[Any] = [None] * threads

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = action(i)
        except BaseException as exc:  # collected, and checked by the test
            results[i] = exc

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    return results


def test_concurrent_submits_admit_exactly_max_queued(wide_fleet: Fleet) -> None:
    # Given a limit of 10 and 8 threads submitting 4 jobs each, one at a time
    wide_fleet.set_quotas(ADMIN, "acme", {"max_queued": 10})

    def submit_four(_: int) -> tuple[int, int]:
        accepted = refused = 0
        for _ in range(4):
            try:
                submit(wide_fleet, ACME)
                accepted += 1
            except QuotaExceeded:
                refused += 1
        return accepted, refused

    results = race(submit_four)
    # Then exactly 10 were admitted, and every refusal was counted once
    assert all(isinstance(r, tuple) for r in results), results
    assert sum(a for a, _ in results) == 10
    assert sum(r for _, r in results) == 22
    view = wide_fleet.get_quotas(ADMIN, "acme")
    assert view.usage.queued == 10
    assert view.refusals == {"max_queued": 22}


def test_concurrent_batches_respect_the_per_minute_window(wide_fleet: Fleet) -> None:
    # Given 7 per minute and 8 threads each submitting a batch of 2
    wide_fleet.set_quotas(ADMIN, "acme", {"submits_per_minute": 7})
    results = race(lambda i: wide_fleet.submit_many(ACME, [make_spec(), make_spec()]))
    # Then three batches (6 jobs) got in whole, the other five were refused whole
    admitted = [r for r in results if isinstance(r, list)]
    assert len(admitted) == 3
    assert all(isinstance(r, QuotaExceeded) for r in results if not isinstance(r, list))
    assert len(wide_fleet.list_jobs(ACME).jobs) == 6
    assert wide_fleet.get_quotas(ADMIN, "acme").refusals == {"submits_per_minute": 5}


@pytest.mark.parametrize("who", ["tenant", "fleet-wide"])
def test_concurrent_claims_never_pass_max_in_flight(wide_fleet: Fleet, who: str) -> None:
    # Given a cap of 3 leased jobs and 20 waiting (and another tenant's work alongside)
    wide_fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 3})
    wide_fleet.submit_many(ACME, [make_spec() for _ in range(20)])
    wide_fleet.submit_many(tenant("beta"), [make_spec() for _ in range(20)])
    claimer = ACME if who == "tenant" else fleet_wide("worker")

    def claim_three_times(i: int) -> int:
        return sum(
            c.job.tenant == "acme"
            for _ in range(3)
            for c in claim(wide_fleet, claimer, f"host-{i}", capabilities=(), max_jobs=2)
        )

    results = race(claim_three_times)
    # Then never more than 3 of acme's jobs were leased, whoever raced for them
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 3
    assert wide_fleet.get_quotas(ADMIN, "acme").usage.in_flight == 3


def test_submits_and_claims_of_a_capped_tenant_interleave(wide_fleet: Fleet) -> None:
    # Given every quota set, submitters and claimers racing
    wide_fleet.set_quotas(ADMIN, "acme", {"max_queued": 6, "max_in_flight": 4, "submits_per_minute": 12})

    def act(i: int) -> int:
        if i % 2:
            return len(claim(wide_fleet, ACME, f"host-{i}", capabilities=(), max_jobs=3))
        admitted = 0
        for _ in range(4):
            try:
                submit(wide_fleet, ACME)
                admitted += 1
            except QuotaExceeded:
                pass
        return admitted

    results = race(act)
    assert all(isinstance(r, int) for r in results), results
    view = wide_fleet.get_quotas(ADMIN, "acme")
    # Then every limit held and the counts add up
    assert view.usage.in_flight <= 4
    assert view.usage.queued <= 6
    assert view.usage.submitted_last_minute <= 12
    assert view.usage.in_flight + view.usage.queued == view.usage.submitted_last_minute
    assert sum(view.refusals.values()) == 16 - view.usage.submitted_last_minute
