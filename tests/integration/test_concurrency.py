"""Concurrency, for real: OS processes and threads against real databases."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from adapters.bootstrap import Settings, build_app
from adapters.eventstore.application import FleetEventStore
from coordinator.claiming import ClaimRequest
from coordinator.identity import Identity
from domain.job import Job
from tests.integration.claimers import claim_and_complete, run_reaper
from tests.support import FakeClock, build_fleet, make_spec

pytestmark = pytest.mark.slow
WORKER = Identity.of("workers", None)
ACME = Identity.of("submitter", "acme")


def _submit(settings: Settings, n: int, **spec: object) -> list:
    fleet = build_app(settings)
    try:
        ids = []
        for start in range(0, n, 500):
            results = fleet.submit_many(
                ACME, [make_spec(payload={"n": i}, **spec) for i in range(start, min(n, start + 500))]
            )
            ids += [r.job_id for r in results]
        return ids
    finally:
        fleet.close()


def _run_claimers(settings: Settings, processes: int, batch: int) -> tuple[Counter, list[str]]:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=claim_and_complete, args=(settings.model_dump_json(), i, batch, start, results))
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every process import and connect before the race starts
    start.set()
    done: Counter = Counter()
    errors: list[str] = []
    for _ in procs:
        _, finished, errs = results.get(timeout=300)
        done.update(finished)
        errors += errs
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return done, errors


def _assert_exactly_once_without_overlap(settings: Settings, ids: list) -> None:
    fleet = build_app(settings.model_copy(update={"migrate": False}))
    try:
        for job_id in ids:
            history = fleet.history(ACME, job_id)
            types = [h.type for h in history]
            assert types.count("JobSucceeded") == 1, types
            # Leases of one job never overlap: each grant follows the end of the previous one
            intervals = []
            for h in history:
                if h.type == "LeaseGranted":
                    intervals.append([h.at, None])
                elif h.type in ("JobSucceeded", "AttemptFailed", "LeaseExpired", "LeaseReleased"):
                    intervals[-1][1] = h.at
            for (_, end), (nxt, _) in pairwise(intervals):
                assert end is not None and end <= nxt
        assert fleet.verify_projections(WORKER).ok
    finally:
        fleet.close()


@pytest.mark.postgres
def test_eight_processes_claim_2000_jobs_each_exactly_once(pg_database: str) -> None:
    # Given 2,000 queued jobs
    settings = Settings(database_url=pg_database, pool_size=2, max_overflow=2)
    ids = _submit(settings, 2000)
    # When 8 OS processes claim (in batches) and complete as fast as they can
    done, errors = _run_claimers(settings, processes=8, batch=5)
    # Then no claimer saw an error, and every job succeeded exactly once
    assert errors == []
    assert set(done) == {str(i) for i in ids}
    assert max(done.values()) == 1
    _assert_exactly_once_without_overlap(settings, ids)


def test_four_processes_share_the_embedded_store(tmp_path: Path) -> None:
    # SQLite: the claim is a compare-and-set under the database write lock (BEGIN IMMEDIATE)
    settings = Settings(data_dir=tmp_path / "data")
    ids = _submit(settings, 300)
    done, errors = _run_claimers(settings, processes=4, batch=5)
    assert errors == []
    assert set(done) == {str(i) for i in ids} and max(done.values()) == 1
    _assert_exactly_once_without_overlap(settings, ids)


@pytest.mark.postgres
def test_two_reapers_in_parallel_never_double_expire(pg_database: str) -> None:
    settings = Settings(database_url=pg_database, pool_size=2, max_overflow=2)
    ids = _submit(settings, 300, lease_seconds=1)
    fleet = build_app(settings)
    try:
        for _ in range(3):
            fleet.claim(WORKER, ClaimRequest(factory_id="doomed", max_jobs=100))
    finally:
        fleet.close()
    time.sleep(1.2)
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=run_reaper, args=(settings.model_dump_json(), start, results)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)
    start.set()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [err for _, err in outcomes if err] == []
    assert sum(n for n, _ in outcomes) == 300
    fleet = build_app(settings.model_copy(update={"migrate": False}))
    try:
        for job_id in ids:
            assert [h.type for h in fleet.history(ACME, job_id)].count("LeaseExpired") == 1
    finally:
        fleet.close()


def test_two_writers_of_the_same_version_one_wins(backend: Settings, clock: FakeClock) -> None:
    # Given two copies of a job loaded at the same version (bypassing the row lock)
    fleet = build_fleet(backend, clock)
    try:
        job_id = fleet.submit(ACME, make_spec()).job.id
        store: FleetEventStore = fleet.ctx.store.app  # type: ignore[attr-defined]
        first: Job = store.repository.get(job_id)
        second: Job = store.repository.get(job_id)
        # When both grant a lease and append
        first.grant_lease("host-a", 30, clock.now())
        second.grant_lease("host-b", 30, clock.now())
        store.save(first)
        # Then the second append is refused by the events table's (id, version) key
        from eventsourcing.persistence import IntegrityError

        with pytest.raises(IntegrityError):
            store.save(second)
        assert [h.data.get("factory_id") for h in fleet.history(ACME, job_id)][1] == "host-a"
    finally:
        fleet.close()


def test_concurrent_claims_for_one_job_give_it_to_exactly_one(backend: Settings, clock: FakeClock) -> None:
    import threading

    fleet = build_fleet(backend, clock)
    try:
        fleet.submit(ACME, make_spec())
        barrier = threading.Barrier(6)
        got: list[int] = []
        errors: list[BaseException] = []

        def claim(i: int) -> None:
            try:
                barrier.wait()
                got.append(len(fleet.claim(WORKER, ClaimRequest(factory_id=f"h{i}", max_jobs=1))))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and sorted(got) == [0, 0, 0, 0, 0, 1]
    finally:
        fleet.close()
