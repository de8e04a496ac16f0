"""A submit hands its job to a long-poll claim waiting on the same server, in the
submit's own transaction; with many pollers and submitters at once, every job is
still leased exactly once and no poll is left hanging."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from adapters.bootstrap import Settings
from adapters.http.app import ApiConfig
from adapters.http.waiting import QUIET_SECONDS
from adapters.store.loop_commits import LOOP_APPLICATION_NAME, LOOP_POOL_MIN
from coordinator.identity import Role
from tests.http.live import LiveServer, serve
from tests.support import tenant as tenant_identity


def poll_once(live: LiveServer, body: dict[str, Any], answered: dict[str, Any]) -> threading.Thread:
    def poll() -> None:
        with live.as_tenant("acme", Role.WORKER) as worker:
            answered["response"] = worker.post("/v1/claim", json={"wait_seconds": 10, **body})

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)  # the poll is waiting by now
    assert thread.is_alive(), "the long poll returned without work"
    return thread


def test_the_waiting_poll_gets_the_job_from_the_submits_transaction(live_server: LiveServer) -> None:
    answered: dict[str, Any] = {}
    thread = poll_once(live_server, {"factory_id": "f1", "queues": ["q"], "start": True}, answered)
    with live_server.as_tenant("acme") as submitter:
        response = submitter.post("/v1/jobs", json={"queue": "q", "payload": {"x": 1}})
        thread.join(timeout=10)
        assert response.status_code == 201
        submitted = response.json()
        # The job was leased before the submit answered: its resource says so
        assert submitted["job"]["state"] == "running"
        assert submitted["job"]["lease"]["factory_id"] == "f1"
        jobs = answered["response"].json()["jobs"]
        assert [j["job"]["id"] for j in jobs] == [submitted["job"]["id"]]
        assert jobs[0]["epoch"] == 1
        events = submitter.get(f"/v1/jobs/{submitted['job']['id']}/events").json()
        assert [e["type"] for e in events] == ["JobSubmitted", "LeaseGranted", "JobStarted"]
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        done = worker.patch(f"/v1/jobs/{jobs[0]['job']['id']}", json={"epoch": 1, "state": "succeeded"})
        assert done.status_code == 200 and done.json()["state"] == "succeeded"


def test_a_poll_that_cannot_run_the_job_is_not_given_it(live_server: LiveServer) -> None:
    answered: dict[str, Any] = {}
    body = {"factory_id": "f1", "capabilities": ["cpu"], "wait_seconds": 1.0}
    thread = poll_once(live_server, body, answered)
    with live_server.as_tenant("acme") as submitter:
        response = submitter.post("/v1/jobs", json={"capabilities": ["gpu"]})
        thread.join(timeout=10)
        assert response.json()["job"]["state"] == "queued"
    assert answered["response"].json() == {"jobs": []}


@pytest.mark.postgres
@pytest.mark.parametrize("loop_commits", [True, False], ids=["loop-commits", "thread-commits"])
def test_on_postgresql_a_guessed_hand_over_is_committed_from_the_event_loop(
    pg_database: str, loop_commits: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    execute = psycopg.AsyncClientCursor.execute

    async def counting(self: psycopg.AsyncClientCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncClientCursor, "execute", counting)
    config = ApiConfig(poll_seconds=0.25, loop_commits=loop_commits)
    with serve(Settings(database_url=pg_database), config) as live:
        for _ in range(2):
            # The poll's claim finds nothing: the submit's claim for it is guessed
            answered: dict[str, Any] = {}
            thread = poll_once(live, {"factory_id": "f1", "start": True}, answered)
            with live.as_tenant("acme") as submitter:
                submitted = submitter.post("/v1/jobs", json={"payload": {}}).json()
            thread.join(timeout=10)
            assert submitted["job"]["state"] == "running"
            assert [j["job"]["id"] for j in answered["response"].json()["jobs"]] == [submitted["job"]["id"]]
    # Sent from the loop's own connection, with the COMMIT; or never, when turned off
    assert sum(query.endswith("COMMIT") for query in sent) == (2 if loop_commits else 0)


@pytest.mark.postgres
def test_on_postgresql_the_loops_connections_open_with_the_server(pg_database: str) -> None:
    def loop_connections() -> int:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = %s",
                (LOOP_APPLICATION_NAME,),
            ).fetchone()
        return int(row[0]) if row else 0

    with serve(Settings(database_url=pg_database), ApiConfig(poll_seconds=0.25)):
        # Before any request: the first hand-over does not wait for a connection
        assert loop_connections() == LOOP_POOL_MIN
    assert loop_connections() == 0  # closed with the server


@pytest.fixture
def no_handoff_server(backend: Settings) -> Iterator[LiveServer]:
    with serve(backend, ApiConfig(poll_seconds=0.25, handoff=False)) as server:
        yield server


def test_with_handoff_off_the_job_goes_through_the_queue(no_handoff_server: LiveServer) -> None:
    answered: dict[str, Any] = {}
    thread = poll_once(no_handoff_server, {"factory_id": "f1", "queues": ["q"]}, answered)
    with no_handoff_server.as_tenant("acme") as submitter:
        response = submitter.post("/v1/jobs", json={"queue": "q"})
        thread.join(timeout=10)
        assert response.json()["job"]["state"] == "queued"
    assert [j["job"]["id"] for j in answered["response"].json()["jobs"]] == [response.json()["job"]["id"]]


JOBS = 400
POLLERS = 6
SUBMITTERS = 4


@pytest.mark.slow
def test_concurrent_submits_and_polls_lease_every_job_exactly_once(live_server: LiveServer) -> None:
    stop = threading.Event()

    def poller(n: int) -> list[str]:
        got: list[str] = []
        with live_server.as_tenant("acme", Role.WORKER) as worker:
            while not stop.is_set():
                response = worker.post(
                    "/v1/claim",
                    json={"factory_id": f"f{n}", "max_jobs": 1 + n % 3, "wait_seconds": 0.5, "start": True},
                )
                assert response.status_code == 200, response.text
                got += [j["job"]["id"] for j in response.json()["jobs"]]
        return got

    def submitter(n: int) -> list[tuple[str, str]]:
        out = []
        with live_server.as_tenant("acme") as http:
            for i in range(n, JOBS, SUBMITTERS):
                response = http.post("/v1/jobs", json={"payload": {"i": i}})
                assert response.status_code == 201, response.text
                out.append((response.json()["job"]["id"], response.json()["job"]["state"]))
        return out

    with ThreadPoolExecutor(POLLERS + SUBMITTERS) as pool:
        polls = [pool.submit(poller, n) for n in range(POLLERS)]
        submitted = [s for batch in pool.map(submitter, range(SUBMITTERS)) for s in batch]
        deadline = time.monotonic() + 30
        with live_server.as_tenant("acme", Role.READER) as reader:
            while reader.get("/v1/jobs", params={"state": "queued"}).json()["jobs"]:
                assert time.monotonic() < deadline, "jobs were left in the queue"
                time.sleep(0.1)
        stop.set()
        leased = [job for p in polls for job in p.result(timeout=30)]  # no poll hangs
    counts = Counter(leased)
    assert set(counts) == {job_id for job_id, _ in submitted}
    assert max(counts.values()) == 1, "a job was leased twice"
    handed = sum(1 for _, state in submitted if state != "queued")
    assert handed > 0, "no submit found a waiting poll"
    with live_server.as_tenant("acme", Role.READER) as reader:
        for job_id, _ in submitted[::40]:
            types = [e["type"] for e in reader.get(f"/v1/jobs/{job_id}/events").json()]
            assert types.count("LeaseGranted") == 1


def counting_claims(live: LiveServer) -> list[int]:
    """Count the coordinator claims the server makes (the Api looks ``claim`` up per call)."""
    calls = [0]
    claim = live.fleet.claim

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return claim(*args, **kwargs)

    live.fleet.claim = counted  # type: ignore[method-assign]
    return calls


def test_a_worker_polling_again_right_after_a_short_claim_is_handed_work_without_claiming(
    live_server: LiveServer,
) -> None:
    calls = counting_claims(live_server)
    body = {"factory_id": "f1", "queues": ["q"], "max_jobs": 2}
    with live_server.as_tenant("acme", Role.WORKER) as worker, live_server.as_tenant("acme") as submitter:
        assert worker.post("/v1/claim", json={**body, "wait_seconds": 0.05}).json() == {"jobs": []}
        before = calls[0]
        answered: dict[str, Any] = {}

        def poll() -> None:
            answered["response"] = worker.post("/v1/claim", json={**body, "wait_seconds": 5})

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.02)  # the poll is waiting, within the quiet after its short claim
        job = submitter.post("/v1/jobs", json={"queue": "q"}).json()["job"]
        thread.join(timeout=10)
    assert [j["job"]["id"] for j in answered["response"].json()["jobs"]] == [job["id"]]
    assert calls[0] == before, "the poll claimed although nothing had changed"


def test_work_nobody_announced_is_still_found_soon_after_a_short_claim(live_server: LiveServer) -> None:
    body = {"factory_id": "f1", "queues": ["q"]}
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        assert worker.post("/v1/claim", json={**body, "wait_seconds": 0.05}).json() == {"jobs": []}
        # A job this server's broadcaster never hears of (submitted in-process, bypassing the API;
        # on PostgreSQL its NOTIFY still arrives, on SQLite nothing announces it)
        job = live_server.fleet.submit(tenant_identity("acme"), {"queue": "q"}).job.id
        started = time.monotonic()
        jobs = worker.post("/v1/claim", json={**body, "wait_seconds": 5}).json()["jobs"]
        waited = time.monotonic() - started
    assert [j["job"]["id"] for j in jobs] == [str(job)]
    assert waited < 0.2 + QUIET_SECONDS, f"found after {waited:.3f}s"
