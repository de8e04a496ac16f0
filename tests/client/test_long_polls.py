"""Long-poll claims and claim streams from ``FleetClient``: each polling thread keeps one
connection alive between its polls (a worker polls again a moment after every answer),
a stream yields each job as it is leased, and either is cut short by its
``Interrupter``, on a kept-alive connection too."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from adapters.client import FleetClient, Interrupter
from coordinator.claiming import ClaimRequest
from coordinator.errors import Forbidden
from coordinator.identity import Role
from tests.client.conftest import WORKER_ROLES, ClientFactory

POLL = ClaimRequest(factory_id="host-1")


def lane_socket(client: FleetClient) -> socket.socket | None:
    """The connection this thread's long polls travel on."""
    return client._session._lanes.lane().socket


def poll(client: FleetClient, interrupter: Interrupter, wait: float = 20.0) -> list[Any]:
    return client.claim(POLL, wait_seconds=wait, interrupter=interrupter)


def test_a_threads_long_polls_travel_on_one_kept_alive_connection(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a worker that long-polls twice, each poll answered by a submitted job
    worker = make_client("acme", *WORKER_ROLES)
    interrupter = Interrupter()
    client.submit({"queue": "q"})
    [first] = poll(worker, interrupter)
    connection = lane_socket(worker)
    client.submit({"queue": "q"})
    [second] = poll(worker, interrupter)

    # Then both travelled on the same connection, still open
    assert connection is not None and lane_socket(worker) is connection
    assert connection.fileno() != -1
    assert first.job.id != second.job.id


def test_a_poll_on_a_kept_alive_connection_is_cut_short(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a thread whose first poll was answered, and whose second waits on that connection
    worker = make_client("acme", *WORKER_ROLES)
    interrupter = Interrupter()
    client.submit({"queue": "q"})
    outcome: dict[str, Any] = {}

    def polls() -> None:
        poll(worker, interrupter)
        outcome["connection"] = lane_socket(worker)
        outcome["started"] = time.monotonic()
        outcome["second"] = poll(worker, interrupter)
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=polls)
    thread.start()
    deadline = time.monotonic() + 5
    while "started" not in outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the second poll is waiting on the server

    # When the interrupter fires
    interrupter.fire()
    thread.join(5)

    # Then the waiting poll returned no jobs at once, instead of after its 20 s
    assert not thread.is_alive()
    assert outcome["second"] == []
    assert outcome["ended"] - outcome["started"] < 3
    assert outcome["connection"] is not None


def test_each_polling_thread_has_its_own_connection_and_an_ended_threads_is_closed(
    client: FleetClient, make_client: ClientFactory
) -> None:
    worker = make_client("acme", *WORKER_ROLES)
    interrupter = Interrupter()
    seen: list[socket.socket | None] = []

    def one_poll() -> None:
        client.submit({"queue": "q"})
        poll(worker, interrupter)
        seen.append(lane_socket(worker))

    # Given a thread that polled, then ended
    thread = threading.Thread(target=one_poll)
    thread.start()
    thread.join(10)
    # When this thread polls
    one_poll()

    # Then it had a connection of its own, and the ended thread's was closed
    ended, mine = seen
    assert ended is not None and mine is not None and ended is not mine
    assert ended.fileno() == -1
    assert mine.fileno() != -1


def test_threads_taking_turns_on_a_named_lane_share_its_connection(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a worker whose claim streams travel on the lane "claims"
    worker = make_client("acme", *WORKER_ROLES)
    interrupter = Interrupter()
    seen: list[socket.socket | None] = []

    def one_stream() -> None:
        client.submit({"queue": "q"})
        request = POLL.model_copy(update={"max_jobs": 1})
        jobs = list(worker.claim_stream(request, wait_seconds=5, interrupter=interrupter, lane="claims"))
        assert len(jobs) == 1
        seen.append(worker._session._lanes.lane("claims").socket)

    # When one thread reads a stream, then another thread the next one
    for _ in range(2):
        thread = threading.Thread(target=one_stream)
        thread.start()
        thread.join(10)

    # Then both streams travelled on the same kept-alive connection, not one per thread
    first, second = seen
    assert first is not None and second is first and first.fileno() != -1
    # And neither thread made a lane of its own
    assert not worker._session._lanes._lanes


def test_a_claim_stream_yields_each_job_as_it_is_leased(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a worker streaming a claim for 2 jobs, read on a thread
    worker = make_client("acme", *WORKER_ROLES)
    arrived: list[tuple[float, Any]] = []

    def read() -> None:
        for claimed in worker.claim_stream(
            ClaimRequest(factory_id="host-1", max_jobs=2), wait_seconds=20, interrupter=Interrupter()
        ):
            arrived.append((time.monotonic(), claimed))

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.3)
    # When two jobs are submitted a moment apart
    first = client.submit({"queue": "q"}).job
    deadline = time.monotonic() + 5
    while not arrived and time.monotonic() < deadline:
        time.sleep(0.01)
    # Then the first came while the stream was still open for the second
    assert [c.job.id for _, c in arrived] == [first.id] and thread.is_alive()
    second = client.submit({"queue": "q"}).job
    thread.join(10)
    # And the stream ended with its second job, not after its 20 s
    assert not thread.is_alive()
    assert [c.job.id for _, c in arrived] == [first.id, second.id]
    assert all(c.epoch == 1 and c.job.lease is not None for _, c in arrived)


def test_a_claim_stream_is_cut_short_by_its_interrupter(make_client: ClientFactory) -> None:
    worker = make_client("acme", *WORKER_ROLES)
    interrupter = Interrupter()
    outcome: dict[str, Any] = {}

    def read() -> None:
        started = time.monotonic()
        outcome["jobs"] = list(worker.claim_stream(POLL, wait_seconds=20, interrupter=interrupter))
        outcome["took"] = time.monotonic() - started

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.5)
    interrupter.fire()
    thread.join(5)
    assert not thread.is_alive()
    assert outcome == {"jobs": [], "took": outcome["took"]} and outcome["took"] < 3


def test_a_refused_claim_stream_raises_the_coordinators_error(make_client: ClientFactory) -> None:
    submitter_only = make_client("acme", Role.SUBMITTER)
    with pytest.raises(Forbidden):
        list(submitter_only.claim_stream(POLL, wait_seconds=1, interrupter=Interrupter()))
