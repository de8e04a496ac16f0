"""Claims over HTTP under concurrency, and long-polling."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from coordinator.identity import Role
from tests.http.live import LiveServer

JOBS = 1000
CLAIMERS = 16


@pytest.mark.slow
def test_16_concurrent_claimers_lease_each_of_1000_jobs_once(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme", Role.SUBMITTER, Role.READER) as http:
        for start in range(0, JOBS, 500):
            response = http.post(
                "/v1/jobs/batch",
                json={"jobs": [{"queue": "q", "payload": {"i": i}} for i in range(start, start + 500)]},
            )
            assert response.status_code == 200
    token = live_server.token("acme", Role.WORKER)
    go = threading.Barrier(CLAIMERS)

    def claimer(n: int) -> list[tuple[str, int]]:
        leased: list[tuple[str, int]] = []
        with live_server.client(token) as worker:
            go.wait()
            empty = 0
            while empty < 2:
                response = worker.post(
                    "/v1/claim", json={"factory_id": f"f{n}", "max_jobs": 7, "lease_seconds": 600}
                )
                assert response.status_code == 200, response.text
                jobs = response.json()["jobs"]
                empty = empty + 1 if not jobs else 0
                leased += [(j["job"]["id"], j["epoch"]) for j in jobs]
        return leased

    with ThreadPoolExecutor(CLAIMERS) as pool:
        per_claimer = list(pool.map(claimer, range(CLAIMERS)))
    leased = [job for jobs in per_claimer for job in jobs]
    counts = Counter(job_id for job_id, _ in leased)
    assert len(counts) == JOBS
    assert max(counts.values()) == 1, "a job was leased twice"
    assert sum(1 for jobs in per_claimer if jobs) > 1, "the claimers did not overlap"
    with live_server.as_tenant("acme", Role.READER) as http:
        queued = http.get("/v1/jobs", params={"state": "queued"}).json()["jobs"]
    assert queued == []
    # the log agrees: one lease per job
    sample = [job_id for job_id, _ in leased[:: JOBS // 20]]
    with live_server.as_tenant("acme", Role.READER) as http:
        for job_id in sample:
            types = [e["type"] for e in http.get(f"/v1/jobs/{job_id}/events").json()]
            assert types.count("LeaseGranted") == 1


def test_a_long_poll_returns_within_100_ms_of_a_submit(live_server: LiveServer) -> None:
    delays: list[float] = []
    with live_server.as_tenant("acme") as submitter, live_server.as_tenant("acme", Role.WORKER) as worker:
        for round_ in range(5):
            answered: dict[str, float] = {}

            def poll(answered: dict[str, float] = answered) -> None:
                response = worker.post(
                    "/v1/claim", json={"factory_id": "f1", "wait_seconds": 10, "queues": ["q"]}
                )
                answered["at"] = time.monotonic()
                answered["jobs"] = len(response.json()["jobs"])

            thread = threading.Thread(target=poll)
            thread.start()
            time.sleep(0.3)  # the poll is waiting by now
            assert thread.is_alive(), "the long poll returned without work"
            response = submitter.post("/v1/jobs", json={"queue": "q", "payload": {"round": round_}})
            submitted = time.monotonic()
            assert response.status_code == 201
            thread.join(timeout=10)
            assert answered["jobs"] == 1
            delays.append(answered["at"] - submitted)
    assert statistics.median(delays) < 0.1, f"long-poll wake-up delays: {delays}"


def test_a_long_poll_without_work_waits_its_time_then_answers_empty(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        started = time.monotonic()
        response = worker.post("/v1/claim", json={"factory_id": "f1", "wait_seconds": 0.8})
        waited = time.monotonic() - started
    assert response.status_code == 200 and response.json() == {"jobs": []}
    assert 0.7 <= waited < 5


def test_a_long_poll_ignores_other_queues_and_tenants(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme", Role.WORKER) as worker, live_server.as_tenant("globex") as other:
        answered: dict[str, object] = {}

        def poll() -> None:
            answered["body"] = worker.post(
                "/v1/claim", json={"factory_id": "f1", "wait_seconds": 1.5, "queues": ["q"]}
            ).json()

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.2)
        other.post("/v1/jobs", json={"queue": "q"})
        other.post("/v1/jobs", json={"queue": "elsewhere"})
        thread.join(timeout=10)
    assert answered["body"] == {"jobs": []}


@pytest.mark.postgres
@pytest.mark.slow
def test_two_servers_on_one_database_lease_each_job_once(pg_database: str) -> None:
    from adapters.bootstrap import Settings
    from tests.http.live import serve

    settings = Settings(database_url=pg_database, pool_size=4, max_overflow=8)
    with serve(settings) as one, serve(settings.model_copy(update={"migrate": False})) as two:
        with one.as_tenant("acme") as http:
            assert http.post("/v1/jobs/batch", json={"jobs": [{"queue": "q"}] * 300}).status_code == 200

        def claimer(args: tuple[LiveServer, int]) -> list[str]:
            server, n = args
            got: list[str] = []
            with server.as_tenant("acme", Role.WORKER) as worker:
                while jobs := worker.post("/v1/claim", json={"factory_id": f"f{n}", "max_jobs": 5}).json()[
                    "jobs"
                ]:
                    got += [j["job"]["id"] for j in jobs]
            return got

        with ThreadPoolExecutor(8) as pool:
            leased = [
                i for got in pool.map(claimer, [(one if n % 2 else two, n) for n in range(8)]) for i in got
            ]
    assert len(leased) == 300 and len(set(leased)) == 300
