"""Refilled claim streams from the worker's side: ``HttpPort`` gives its stream room as
handler slots free, so one stream serves job after job; the worker never holds more
leases than it has slots; and when room requests find no stream (a server of several
processes), the port goes back to a stream per batch of free slots."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import JsonValue

from adapters.client import FleetClient
from adapters.http.claims import REFILL_IDLE_SECONDS
from adapters.http.schemas import RoomResult
from adapters.worker import JobContext, Worker
from adapters.worker.http_port import REFILL_MISSES, HttpPort
from coordinator.claiming import ClaimRequest
from coordinator.errors import NotFound
from coordinator.views import ClaimedJob, JobView
from tests.client.conftest import WORKER_ROLES, ClientFactory
from tests.http.live import LiveServer
from tests.integration.worker_helpers import config, wait_until


class CountingPort(HttpPort):
    """Counts claim streams, and the most jobs the worker held at once (after each
    dispatch, its busy slots: a job leased beyond them would push it past the size)."""

    def __init__(self, client: FleetClient, **options: Any):
        super().__init__(client, **options)
        self.streams = 0
        self.most_busy = 0
        self.busy: Callable[[], int] = lambda: 0

    def claim(self, request: ClaimRequest) -> Iterator[ClaimedJob]:
        self.streams += 1
        for job in super().claim(request):
            yield job
            self.most_busy = max(self.most_busy, self.busy())


def short_job(view: JobView, ctx: JobContext) -> JsonValue:
    time.sleep(0.02)
    return None


def run_worker(port: CountingPort, slots: int) -> Worker:
    worker = Worker(port, {"q": short_job}, config(concurrency=slots))
    port.busy = lambda: worker.busy
    worker.start()
    return worker


def test_one_refilled_stream_serves_job_after_job_within_the_workers_slots(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a worker with 2 slots whose claims wait up to 20 s on the server
    port = CountingPort(make_client("acme", *WORKER_ROLES), wait_seconds=20)
    worker = run_worker(port, slots=2)
    try:
        # When 30 jobs come in small bursts, more at once than it has slots
        for burst in range(10):
            client.submit_batch([{"queue": "q", "payload": {"n": burst * 3 + i}} for i in range(3)])
            time.sleep(0.05)
        wait_until(lambda: worker.stats.succeeded == 30, timeout=30, what="30 successes")
    finally:
        worker.shutdown()
        port.close()
    # Then they ran over a stream or two, not one stream per 2 jobs
    assert port.streams <= 3, port.streams
    # And the worker never held more leases than slots
    assert port.most_busy <= 2
    assert worker.stats.lost == worker.stats.released == 0


def test_a_one_slot_worker_keeps_its_stream_open_job_after_job(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a worker with 1 slot: the job it reads takes the slot on one thread while
    # another resumes the stream, so a room request may find the job counted twice
    port = CountingPort(make_client("acme", *WORKER_ROLES), wait_seconds=20)
    worker = run_worker(port, slots=1)
    try:
        # When 15 jobs come one at a time
        for n in range(15):
            client.submit({"queue": "q", "payload": {"n": n}})
            # Then each runs at once (room held back would leave it until the stream's 20 s end)
            wait_until(lambda n=n: worker.stats.succeeded == n + 1, timeout=3, what=f"job {n}")
    finally:
        worker.shutdown()
        port.close()
    # And one stream served them all
    assert port.streams == 1, port.streams


class RoomCountingClient(FleetClient):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rooms: list[int] = []

    def add_room(self, stream_id: str, jobs: int) -> RoomResult:
        self.rooms.append(jobs)
        return super().add_room(stream_id, jobs)


def test_room_counted_while_a_job_is_between_readers_is_given_once_the_stream_resumes(
    client: FleetClient, live_server: LiveServer
) -> None:
    # Given a one-slot refilled stream that has handed a job over to the runtime
    worker_client = RoomCountingClient(live_server.url, live_server.token("acme", *WORKER_ROLES))
    port = HttpPort(worker_client, wait_seconds=5)
    client.submit({"queue": "q", "payload": {"n": 0}})
    stream = iter(port.claim(ClaimRequest(factory_id="f1", max_jobs=1, queues=("q",))))
    try:
        first = next(stream)
        # When its slot frees before the runtime resumes the stream (the job ran on the
        # thread that read it; the next reader has not resumed yet): the job still counts
        # as outstanding, so no room goes now (a stream with no room ends after
        # REFILL_IDLE_SECONDS: it must get its room before then)
        port.slot_freed(lambda: 1)
        time.sleep(REFILL_IDLE_SECONDS / 3)
        assert worker_client.rooms == []
        # Then once the stream is resumed, the room held back is given
        client.submit({"queue": "q", "payload": {"n": 1}})
        started = time.monotonic()
        second = next(stream)
        assert worker_client.rooms == [1]
        # And the next job came at once, on the same stream
        assert time.monotonic() - started < 1
        assert (first.job.payload, second.job.payload) == ({"n": 0}, {"n": 1})
    finally:
        port.close()
        worker_client.close()


class NowhereClient(FleetClient):
    """Room requests reach a server process that does not hold the stream."""

    def add_room(self, stream_id: str, jobs: int) -> RoomResult:
        raise NotFound("claim stream", stream_id)


def test_room_requests_that_find_no_stream_turn_refill_off(live_server: LiveServer) -> None:
    url, token = live_server.url, live_server.token("acme")
    client = NowhereClient(url, token)
    port = CountingPort(client, wait_seconds=2)
    worker = run_worker(port, slots=1)
    submitter = FleetClient(url, token)
    try:
        for n in range(REFILL_MISSES + 3):
            submitter.submit({"queue": "q", "payload": {"n": n}})
            wait_until(lambda n=n: worker.stats.succeeded == n + 1, timeout=15, what=f"job {n}")
    finally:
        worker.shutdown()
        port.close()
        client.close()
        submitter.close()
    # Then every job ran, and after REFILL_MISSES missed streams the port stopped refilling
    assert worker.stats.succeeded == REFILL_MISSES + 3
    assert port.refill is False
