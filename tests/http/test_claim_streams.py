"""``POST /v1/claim/stream``: one request that writes each job leased to the worker as
a line as soon as it is leased, until max_jobs were written or the wait is over;
concurrent submits and streams still lease every job exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from adapters.bootstrap import Settings
from adapters.http.app import ApiConfig
from coordinator.identity import Role
from tests.http.live import LiveServer, serve

NDJSON = "application/x-ndjson"


class Stream:
    """A claim stream read on a thread: each line with the time it arrived."""

    def __init__(self, live: LiveServer, body: dict[str, Any], tenant: str | None = "acme"):
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.status: int | None = None
        self.media_type = ""
        self.ended: float | None = None
        self._client = live.client(live.token(tenant, Role.WORKER), timeout=60)
        self._body = body
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self) -> None:
        with self._client.stream("POST", "/v1/claim/stream", json=self._body) as response:
            self.status = response.status_code
            self.media_type = response.headers.get("content-type", "")
            for line in response.iter_lines():
                if line:
                    self.lines.append((time.monotonic(), json.loads(line)))
        self.ended = time.monotonic()

    def ids(self) -> list[str]:
        return [line["job"]["id"] for _, line in self.lines]

    def join(self, timeout: float = 15) -> Stream:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"
        self._client.close()
        return self


def wait_for(predicate: Any, timeout: float = 5, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_each_job_is_written_as_it_is_leased_and_the_stream_waits_on(live_server: LiveServer) -> None:
    # Given a stream for up to 3 jobs, waiting up to 10 s
    stream = Stream(live_server, {"factory_id": "f1", "max_jobs": 3, "wait_seconds": 10, "start": True})
    time.sleep(0.3)
    with live_server.as_tenant("acme") as submitter:
        # When jobs are submitted one after another
        submitted = []
        for n in range(3):
            sent = time.monotonic()
            job = submitter.post("/v1/jobs", json={"payload": {"n": n}}).json()["job"]
            submitted.append(job["id"])
            # Then each is on the stream at once, long before the wait is over
            wait_for(lambda n=n: len(stream.lines) > n, what=f"job {n} on the stream")
            assert stream.lines[n][0] - sent < 2.0
            if n < 2:
                assert stream.ended is None, "the stream ended before max_jobs"
    # And after the third (max_jobs) the stream ends, without waiting out its 10 s
    stream.join()
    assert stream.status == 200 and stream.media_type.startswith(NDJSON)
    assert stream.ids() == submitted
    first = stream.lines[0][1]
    assert first["epoch"] == 1 and first["job"]["lease"]["factory_id"] == "f1"
    assert first["job"]["state"] == "running"


def test_queued_work_comes_at_once_and_the_stream_ends_when_its_wait_is_over(
    live_server: LiveServer,
) -> None:
    # Given one queued job
    with live_server.as_tenant("acme") as submitter:
        job = submitter.post("/v1/jobs", json={}).json()["job"]
    # When a stream for 5 jobs waits 0.5 s
    started = time.monotonic()
    stream = Stream(live_server, {"factory_id": "f1", "max_jobs": 5, "wait_seconds": 0.5}).join()
    # Then it brought the queued job, and ended with its wait
    assert stream.ids() == [job["id"]]
    assert stream.ended is not None and 0.4 < stream.ended - started < 5


def test_a_stream_ends_at_its_deadline_without_a_last_claim_and_the_next_one_claims_at_once(
    backend: Settings,
) -> None:
    """A last claim at the deadline would make the stream unreservable while it ran, and the
    submits meanwhile would queue their jobs. What became claimable goes to the worker's
    next request instead, at once."""
    # No re-check within the stream's wait and no scheduler to announce the job when it
    # comes due: only a claim at the deadline could take it
    with serve(backend, ApiConfig(poll_seconds=30, background=False)) as live:
        if backend.database_url is not None:
            # The server wakes every waiter once its LISTEN connection is up: let that pass
            wait_for(lambda: _listening(backend.database_url), timeout=20, what="the server's LISTEN")
            time.sleep(0.2)
        # Given a stream that has made its first claim (nothing) and waits 3 s
        started = time.monotonic()
        stream = Stream(live, {"factory_id": "f1", "max_jobs": 2, "wait_seconds": 3.0})
        time.sleep(0.5)
        # And a job that comes due, unannounced, a second before the stream's deadline at least
        run_at = (datetime.now(UTC) + timedelta(seconds=0.5)).isoformat()
        with live.as_tenant("acme") as submitter:
            job = submitter.post("/v1/jobs", json={"payload": {}, "run_at": run_at}).json()["job"]["id"]
        stream.join()
        # Then the stream ended with its wait, empty, and the job is not leased
        assert stream.status == 200 and stream.ids() == []
        assert stream.ended is not None and 2.9 < stream.ended - started < 10
        with live.as_tenant("acme", Role.READER) as reader:
            assert reader.get(f"/v1/jobs/{job}").json()["lease"] is None
        # And the worker's next request claims it at once
        started = time.monotonic()
        following = Stream(live, {"factory_id": "f1", "max_jobs": 1, "wait_seconds": 10}).join()
        assert following.ids() == [job]
        assert following.ended is not None and following.ended - started < 1


def _listening(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'"
        ).fetchone()
    return bool(row and row[0])


def test_a_stream_with_nothing_to_claim_is_empty(live_server: LiveServer) -> None:
    stream = Stream(live_server, {"factory_id": "f1", "wait_seconds": 0.2}).join()
    assert stream.status == 200 and stream.lines == []


def test_another_tenants_jobs_never_reach_a_tenant_bound_stream(live_server: LiveServer) -> None:
    stream = Stream(live_server, {"factory_id": "f1", "max_jobs": 2, "wait_seconds": 1.0}, tenant="acme")
    time.sleep(0.2)
    with live_server.as_tenant("globex") as other, live_server.as_tenant("acme") as mine:
        other.post("/v1/jobs", json={})
        own = mine.post("/v1/jobs", json={}).json()["job"]
    stream.join()
    assert stream.ids() == [own["id"]]


@pytest.mark.parametrize(
    ("token_roles", "body", "status"),
    [
        ((Role.SUBMITTER,), {"factory_id": "f1"}, 403),
        ((Role.WORKER,), {"factory_id": "f1", "max_jobs": 0}, 422),
        ((Role.WORKER,), {"factory_id": "f1", "wait_seconds": 31}, 422),
        ((Role.WORKER,), {"factory_id": "f1", "surprise": True}, 422),
    ],
)
def test_a_refused_stream_is_an_ordinary_problem(
    live_server: LiveServer, token_roles: tuple[Role, ...], body: dict[str, Any], status: int
) -> None:
    with live_server.client(live_server.token("acme", *token_roles)) as http:
        response = http.post("/v1/claim/stream", json=body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_no_token_no_stream(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        response = http.post("/v1/claim/stream", json={"factory_id": "f1"})
    assert response.status_code == 401


JOBS = 300
STREAMS = 4
SUBMITTERS = 3


@pytest.mark.slow
def test_concurrent_submits_and_streams_lease_every_job_exactly_once(live_server: LiveServer) -> None:
    stop = threading.Event()

    def streamer(n: int) -> list[str]:
        got: list[str] = []
        body = {"factory_id": f"f{n}", "max_jobs": 1 + n % 4, "wait_seconds": 0.5, "start": True}
        with live_server.client(live_server.token("acme", Role.WORKER), timeout=30) as worker:
            while not stop.is_set():
                with worker.stream("POST", "/v1/claim/stream", json=body) as response:
                    assert response.status_code == 200, response.read()
                    got += [json.loads(line)["job"]["id"] for line in response.iter_lines() if line]
        return got

    def submitter(n: int) -> list[str]:
        with live_server.as_tenant("acme") as http:
            return [
                http.post("/v1/jobs", json={"payload": {"i": i}}).json()["job"]["id"]
                for i in range(n, JOBS, SUBMITTERS)
            ]

    with ThreadPoolExecutor(STREAMS + SUBMITTERS) as pool:
        streams = [pool.submit(streamer, n) for n in range(STREAMS)]
        submitted = [s for batch in pool.map(submitter, range(SUBMITTERS)) for s in batch]
        deadline = time.monotonic() + 30
        with live_server.as_tenant("acme", Role.READER) as reader:
            while reader.get("/v1/jobs", params={"state": "queued"}).json()["jobs"]:
                assert time.monotonic() < deadline, "jobs were left in the queue"
                time.sleep(0.1)
        stop.set()
        leased = [job for s in streams for job in s.result(timeout=30)]  # no stream hangs
    counts = Counter(leased)
    assert set(counts) == set(submitted)
    assert max(counts.values()) == 1, "a job was leased twice"
