"""The worker runtime over HTTP: ``Worker`` driving ``HttpPort`` against a real server
behaves as it does over ``DirectPort`` — batched claims and completions, fenced
reports, renewals, cancellation, long-poll wake-ups and a prompt graceful stop."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import JsonValue

from adapters.client import FleetClient
from adapters.worker import Handler, JobContext, Worker
from adapters.worker.examples import HANDLERS, noop
from adapters.worker.http_port import HttpPort
from coordinator.claiming import ClaimRequest
from coordinator.reporting import Completion
from coordinator.views import ClaimedJob, ItemResult, JobView
from tests.client.conftest import WORKER_ROLES, ClientFactory
from tests.integration.worker_helpers import config, wait_until


class RecordingHttpPort(HttpPort):
    """The real port, remembering claim and completion batch sizes and claim waits."""

    def __init__(self, client: FleetClient, **options: Any):
        super().__init__(client, **options)
        self.claims: list[int] = []
        self.batches: list[int] = []

    def claim(self, request: ClaimRequest) -> Iterator[ClaimedJob]:
        got = 0
        try:
            for job in super().claim(request):
                got += 1
                yield job
        finally:
            self.claims.append(got)

    def complete(self, completions: Sequence[Completion]) -> list[ItemResult]:
        self.batches.append(len(completions))
        return super().complete(completions)


@contextmanager
def http_worker(
    make_client: ClientFactory,
    handlers: Mapping[str, Handler],
    *,
    tenant: str | None = "acme",
    wait_seconds: float = 5.0,
    **overrides: Any,
) -> Iterator[tuple[Worker, RecordingHttpPort]]:
    port = RecordingHttpPort(make_client(tenant, *WORKER_ROLES), wait_seconds=wait_seconds)
    worker = Worker(port, handlers, config(**overrides))
    worker.start()
    try:
        yield worker, port
    finally:
        worker.shutdown()
        port.close()


def states(client: FleetClient, ids: Sequence[Any]) -> list[str]:
    return [client.get_job(i).state for i in ids]


def test_a_worker_over_http_drains_jobs_each_once_with_batched_completions(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given 40 queued no-op jobs
    results = client.submit_batch([{"queue": "noop"} for _ in range(40)])
    ids = [r.job_id for r in results if r.job_id is not None]

    # When a worker with 8 slots drains them over HTTP
    with http_worker(make_client, {"noop": noop}, concurrency=8, completion_flush_ms=50) as (w, port):
        wait_until(lambda: w.stats.succeeded == 40, timeout=30, what="40 successes")

    # Then every job succeeded exactly once, under one lease
    for job_id in ids:
        kinds = [h.type for h in client.history(job_id)]
        assert kinds.count("LeaseGranted") == kinds.count("JobSucceeded") == 1
    assert set(states(client, ids)) == {"succeeded"}
    # And claims and completions went in batches
    assert max(port.claims) > 1
    assert sum(port.batches) == 40 and max(port.batches) > 1
    assert w.stats.lost == w.stats.failed == w.stats.released == 0


def test_phases_checkpoints_and_failures_are_reported_over_http(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a sleeping job with phases and a job that fails for good
    sleeper = client.submit(
        {"queue": "sleep", "phases": ["one", "two"], "payload": {"seconds": 0.4, "step": 0.1}}
    ).job
    doomed = client.submit({"queue": "fail", "payload": {"retryable": False, "kind": "bad_input"}}).job

    # When the example handlers run them over HTTP
    with http_worker(make_client, HANDLERS, concurrency=2) as (w, _):
        wait_until(lambda: w.stats.succeeded == 1 and w.stats.failed == 1, timeout=20, what="both outcomes")

    # Then the sleeper reported both phases and its checkpoints, and the other dead-lettered
    kinds = [h.type for h in client.history(sleeper.id)]
    assert kinds.count("PhaseReported") == 2 and kinds.count("Checkpointed") == 4
    view = client.get_job(sleeper.id)
    assert view.state == "succeeded" and view.checkpoint == {"done": 4}
    dead = client.get_job(doomed.id)
    assert dead.state == "dead_letter" and dead.error is not None and dead.error.kind == "bad_input"


def wait_for_cancel(view: JobView, ctx: JobContext) -> JsonValue:
    """Writes nothing (a write after a cancel is refused as stale): only a renewal can
    tell it to stop."""
    ctx.cancelled.wait(30)
    return "not reported"


def test_renewals_keep_a_long_job_and_a_cancel_stops_it(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given a job far longer than its 0.6 s lease, running over HTTP
    job = client.submit({"queue": "long", "lease_seconds": 0.6}).job
    with http_worker(make_client, {"long": wait_for_cancel}) as (w, _):
        wait_until(
            lambda: [h.type for h in client.history(job.id)].count("LeaseRenewed") >= 3,
            timeout=20,
            what="three renewals",
        )

        # When it is cancelled
        client.cancel(job.id, reason="changed my mind")

        # Then the next renewal stops its handler, and nothing is reported for it
        wait_until(lambda: w.stats.cancelled == 1, timeout=10, what="the handler to stop")
    view = client.get_job(job.id)
    assert view.state == "cancelled" and view.result is None
    assert "LeaseExpired" not in [h.type for h in client.history(job.id)]


def test_an_idle_worker_long_polls_wakes_for_new_work_and_stops_promptly(
    client: FleetClient, make_client: ClientFactory
) -> None:
    # Given an idle worker whose claims wait up to 20 s on the server
    with http_worker(make_client, {"noop": noop}, wait_seconds=20) as (w, port):
        time.sleep(1.0)
        idle_claims = len(port.claims)

        # When a job is submitted
        submitted = time.monotonic()
        job = client.submit({"queue": "noop"}).job

        # Then the waiting claim answers with it at once
        wait_until(lambda: w.stats.succeeded == 1, timeout=5, what="the job to run")
        assert time.monotonic() - submitted < 2.0
        assert client.get_job(job.id).state == "succeeded"
        # And while idle, it did not poll: a claim or two per 20 s
        assert idle_claims <= 2

        # When it is stopped in the middle of a long poll
        time.sleep(0.5)
        stopping = time.monotonic()
        w.shutdown()

    # Then the stop did not wait for the poll's 20 s
    assert time.monotonic() - stopping < 3.0


def test_a_fleet_wide_worker_serves_every_tenant(make_client: ClientFactory) -> None:
    acme, globex = make_client("acme"), make_client("globex")
    ids = [acme.submit({"queue": "noop"}).job.id, globex.submit({"queue": "noop"}).job.id]
    with http_worker(make_client, {"noop": noop}, tenant=None) as (w, _):
        wait_until(lambda: w.stats.succeeded == 2, timeout=10, what="both tenants' jobs")
    assert acme.get_job(ids[0]).state == globex.get_job(ids[1]).state == "succeeded"


def test_an_outcome_delivered_twice_counts_once(client: FleetClient, make_client: ClientFactory) -> None:
    # Given a claimed job whose success was delivered, but whose answer the worker lost
    job = client.submit({"queue": "noop"}).job
    port = HttpPort(make_client("acme", *WORKER_ROLES))
    [claimed] = port.claim(ClaimRequest(factory_id="host-1"))
    outcome = Completion(job_id=job.id, epoch=claimed.epoch, outcome="succeeded", result=1)
    assert port.complete([outcome])[0].ok

    # When the runtime sends the batch again
    [again] = port.complete([outcome])

    # Then the port reports it accepted: the refusal was of its own earlier write
    assert again.ok and again.state == "succeeded"
    # While a genuinely lost lease stays refused
    other = client.submit({"queue": "noop"}).job
    [second] = port.claim(ClaimRequest(factory_id="host-1"))
    client.cancel(other.id)
    [refused] = port.complete([Completion(job_id=other.id, epoch=second.epoch, outcome="succeeded")])
    assert not refused.ok
