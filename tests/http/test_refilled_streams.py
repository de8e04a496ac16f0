"""Refilled claim streams (``POST /v1/claim/stream`` with ``refill``, and ``POST
/v1/claim/room``): the worker gives the stream room as its handler slots free, so one
stream serves job after job instead of ending after ``max_jobs``; it never leases more
than the room it was given; it ends once it has had no room for a moment; only its own
worker can give it room, and a stream that is not open is a 404."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.bootstrap import Settings
from adapters.http.app import ApiConfig
from adapters.http.claims import REFILL_IDLE_SECONDS
from adapters.http.schemas import STREAM_HEADER
from coordinator.identity import Role
from tests.http.live import LiveServer, serve
from tests.http.test_claim_streams import wait_for


class RefilledStream:
    """A refilled claim stream read on a thread, with its id from the header."""

    def __init__(self, live: LiveServer, body: dict[str, Any], tenant: str = "acme"):
        self.ids: list[str] = []
        self.stream_id: str | None = None
        self.status: int | None = None
        self.ended: float | None = None
        self._client = live.client(live.token(tenant, Role.WORKER), timeout=60)
        self._body = {**body, "refill": True}
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self) -> None:
        with self._client.stream("POST", "/v1/claim/stream", json=self._body) as response:
            self.status = response.status_code
            self.stream_id = response.headers.get(STREAM_HEADER)
            for line in response.iter_lines():
                if line:
                    self.ids.append(json.loads(line)["job"]["id"])
        self.ended = time.monotonic()

    def join(self, timeout: float = 15) -> RefilledStream:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end"
        self._client.close()
        return self


@pytest.fixture
def patient_server(backend: Settings) -> Iterator[LiveServer]:
    """Refilled streams with no room wait 3 s for some (not a moment): room requests in
    these tests are not racing the stream's end."""
    with serve(backend, ApiConfig(refill_idle_seconds=3)) as server:
        yield server


def submit(live: LiveServer, n: int) -> list[str]:
    with live.as_tenant("acme") as submitter:
        return [submitter.post("/v1/jobs", json={"payload": {"n": i}}).json()["job"]["id"] for i in range(n)]


def full_stream(live: LiveServer, wait_seconds: float = 10) -> RefilledStream:
    """A refilled stream for 1 job that has been given one (a job submitted first), and
    so has no room left."""
    first = submit(live, 1)
    stream = RefilledStream(live, {"factory_id": "f1", "max_jobs": 1, "wait_seconds": wait_seconds})
    wait_for(lambda: stream.ids == first, what="the first job")
    assert stream.status == 200 and stream.stream_id is not None
    return stream


def test_a_refilled_stream_serves_as_many_jobs_as_it_is_given_room_for(patient_server: LiveServer) -> None:
    live_server = patient_server
    # Given a refilled stream for 1 job, which it has taken
    stream = full_stream(live_server)
    first = list(stream.ids)
    # When two more jobs are submitted while it has no room
    more = submit(live_server, 2)
    time.sleep(0.1)
    # Then it leases none of them
    assert stream.ids == first
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        # And when its worker gives it room for one, it is given one, then for one more, the other
        answer = worker.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1})
        assert answer.status_code == 200
        assert answer.json() == {"stream": stream.stream_id, "room": 1, "forwarded": False}
        wait_for(lambda: len(stream.ids) == 2, what="a job for the room given")
        time.sleep(0.1)
        assert len(stream.ids) == 2, "it leased more than the room it was given"
        assert worker.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1}).status_code == 200
        wait_for(lambda: len(stream.ids) == 3, what="a job for the second room")
    assert sorted(stream.ids[1:]) == sorted(more)
    # And with no room again it ends after its idle wait (3 s here), before its 10 s
    stream.join(timeout=8)
    assert stream.ended is not None


def test_a_refilled_stream_with_no_room_ends_after_a_moment(live_server: LiveServer) -> None:
    submit(live_server, 1)
    started = time.monotonic()
    stream = RefilledStream(live_server, {"factory_id": "f1", "max_jobs": 1, "wait_seconds": 10}).join(5)
    assert len(stream.ids) == 1
    assert stream.ended is not None and stream.ended - started < REFILL_IDLE_SECONDS + 2


def test_room_for_a_stream_that_is_not_open_or_not_ours_is_not_found(patient_server: LiveServer) -> None:
    live_server = patient_server
    submit(live_server, 1)  # the response (and its header) starts with the first job
    stream = RefilledStream(live_server, {"factory_id": "f1", "max_jobs": 2, "wait_seconds": 3})
    wait_for(lambda: stream.stream_id is not None, what="the stream to open")
    assert stream.stream_id is not None
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        # A stream id of this server process's that is not open
        missing = worker.post("/v1/claim/room", json={"stream": stream.stream_id[:8] + "0" * 24, "jobs": 1})
        assert missing.status_code == 404 and missing.json()["type"].endswith("not-found")
        # Another process's id: PostgreSQL forwards it (whether or not it is open: 202 either
        # way, nothing told); SQLite runs one process, so it is not open anywhere
        foreign = worker.post("/v1/claim/room", json={"stream": "0" * 32, "jobs": 1})
        if live_server.settings.database_url is None:
            assert foreign.status_code == 404
        else:
            assert foreign.status_code == 202
            assert foreign.json() == {"stream": "0" * 32, "room": None, "forwarded": True}
    with live_server.as_tenant("other", Role.WORKER) as stranger:
        # Another tenant's worker cannot tell the stream exists
        answer = stranger.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1})
        assert answer.status_code == 404
    with live_server.as_tenant("acme", Role.READER) as reader:
        assert reader.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1}).status_code == 403
    stream.join()
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        ended = worker.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1})
        assert ended.status_code == 404


def test_bad_room_requests_and_refill_on_a_plain_claim_are_refused(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        for body in (
            {"stream": "not-an-id", "jobs": 1},
            {"stream": "0" * 32, "jobs": 0},
            {"stream": "0" * 32, "jobs": 101},
            {"stream": "0" * 32},
            {"stream": "0" * 32, "jobs": 1, "extra": True},
        ):
            answer = worker.post("/v1/claim/room", json=body)
            assert answer.status_code == 422, body
            assert answer.headers["content-type"].startswith("application/problem+json")
        plain = worker.post("/v1/claim", json={"factory_id": "f1", "refill": True, "wait_seconds": 1})
        assert plain.status_code == 422 and "refill is for claim streams" in plain.json()["detail"]


def test_a_refilled_stream_is_never_given_more_than_max_claim_in_all(patient_server: LiveServer) -> None:
    live_server = patient_server
    submit(live_server, 1)
    stream = RefilledStream(live_server, {"factory_id": "f1", "max_jobs": 99, "wait_seconds": 2})
    wait_for(lambda: stream.stream_id is not None, what="the stream to open")
    with live_server.as_tenant("acme", Role.WORKER) as worker:
        answer = worker.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 100})
        assert answer.status_code == 200 and answer.json()["room"] == 100  # 98 left + 100, capped
    stream.join()


def test_the_document_names_the_stream_header_and_the_room_route(live_server: LiveServer) -> None:
    with live_server.client(None) as http:
        doc = http.get("/openapi.json").json()
    streamed = doc["paths"]["/v1/claim/stream"]["post"]["responses"]["200"]
    assert STREAM_HEADER in streamed["headers"]
    room = doc["paths"]["/v1/claim/room"]["post"]
    assert set(room["responses"]) >= {"200", "202", "401", "403", "404", "422", "503"}
