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
