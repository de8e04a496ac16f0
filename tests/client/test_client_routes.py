"""``FleetClient`` against a real server, one route at a time: each method sends what
the route expects and answers the coordinator's own view models."""

from __future__ import annotations

from adapters.client import FleetClient
from coordinator.claiming import ClaimRequest
from coordinator.identity import Role
from coordinator.reporting import Completion
from coordinator.views import ClaimedJob, JobView
from domain.job.spec import ErrorInfo, RunInsights
from domain.tenant import TenantQuotas
from tests.client.conftest import ClientFactory


def claim_one(client: FleetClient, **overrides: object) -> ClaimedJob:
    request = ClaimRequest.model_validate({"factory_id": "host-1", **overrides})
    [claimed] = client.claim(request)
    return claimed


def test_health_and_readiness(client: FleetClient) -> None:
    assert client.healthz() == {"status": "ok"}
    assert client.readyz()["store"] in {"sqlite", "postgres"}


def test_submit_creates_then_finds_then_supersedes_by_idempotency_key(client: FleetClient) -> None:
    # Given a job submitted with a key in the Idempotency-Key header
    first = client.submit({"queue": "render", "payload": {"doc": 7}}, idempotency_key="doc-7")
    assert first.outcome == "created"
    assert first.job.idempotency_key == "doc-7"
    assert first.job.tenant == "acme" and first.job.state == "queued"

    # When the same content is sent again with the key in the body
    again = client.submit({"queue": "render", "payload": {"doc": 7}, "idempotency_key": "doc-7"})

    # Then it is the same job
    assert again.outcome == "existing"
    assert again.job.id == first.job.id

    # When other content is sent under the key while the job is still queued
    newer = client.submit({"queue": "render", "payload": {"doc": 8}}, idempotency_key="doc-7")

    # Then a new job supersedes the old one
    assert newer.outcome == "superseded"
    assert newer.superseded_job_id == first.job.id
    assert client.get_job(first.job.id).state == "superseded"


def test_submit_batch_answers_in_order(client: FleetClient) -> None:
    results = client.submit_batch([{"queue": "noop", "payload": {"n": n}} for n in range(3)])
    assert [r.index for r in results] == [0, 1, 2]
    assert all(r.ok and r.outcome == "created" and r.job_id for r in results)
    ids = [r.job_id for r in results if r.job_id is not None]
    assert [client.get_job(i).payload for i in ids] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_list_jobs_filters_and_pages(client: FleetClient) -> None:
    # Given five queued jobs on two queues, one of them claimed
    client.submit_batch([{"queue": "a"}] * 3 + [{"queue": "b"}] * 2)
    claim_one(client, queues=["b"])

    # When listing with filters, and page by page
    queued_a = client.list_jobs(state="queued", queue="a")
    leased = client.list_jobs(state=["assigned", "running"])
    page = client.list_jobs(limit=2)
    everything = list(client.iter_jobs(limit=2))

    # Then each answer is a JobPage of summaries
    assert {j.queue for j in queued_a.jobs} == {"a"} and len(queued_a.jobs) == 3
    assert [j.queue for j in leased.jobs] == ["b"]
    assert len(page.jobs) == 2 and page.next_cursor is not None
    assert len(everything) == 5
    assert len({j.id for j in everything}) == 5


def test_claim_then_fenced_writes_then_success(client: FleetClient) -> None:
    # Given a job with phases, claimed and started in the claim
    job = client.submit({"queue": "etl", "phases": ["fetch", "parse"], "lease_seconds": 30}).job
    claimed = claim_one(client, max_jobs=5, lease_seconds=20, start=True)
    assert claimed.job.id == job.id and claimed.job.state == "running"
    epoch = claimed.epoch

    # When the worker renews, reports a phase, a checkpoint and insights, then succeeds
    renewed = client.renew(job.id, epoch, lease_seconds=25)
    assert renewed.cancel_requested is False and renewed.lease_expires_at is not None
    assert client.report_phase(job.id, epoch, "parse").phase == "parse"
    assert client.checkpoint(job.id, epoch, {"page": 3}).checkpoint == {"page": 3}
    client.report_insights(job.id, epoch, RunInsights(model="m-1", tokens_in=12))
    done = client.succeed(job.id, epoch, result={"rows": 9})

    # Then the job holds the result, its run the insights, its history every step
    assert isinstance(done, JobView) and done.state == "succeeded" and done.result == {"rows": 9}
    [run] = client.runs(job.id)
    assert run.outcome == "succeeded" and run.insights is not None and run.insights.tokens_in == 12
    kinds = [h.type for h in client.history(job.id)]
    assert kinds == [
        "JobSubmitted",
        "LeaseGranted",
        "JobStarted",
        "LeaseRenewed",
        "PhaseReported",
        "Checkpointed",
        "InsightsReported",
        "JobSucceeded",
    ]
    # And replay answers the job as of any version
    assert client.state_at(job.id, 1).state == "queued"
    assert client.state_at(job.id, 3).state == "running"


def test_update_job_sends_several_writes_at_once_and_a_null_checkpoint(client: FleetClient) -> None:
    job = client.submit({"queue": "etl", "phases": ["fetch", "parse"]}).job
    epoch = claim_one(client).epoch
    view = client.update_job(job.id, epoch, state="running", phase="fetch", checkpoint={"at": 1})
    assert (view.state, view.phase, view.checkpoint) == ("running", "fetch", {"at": 1})
    assert client.update_job(job.id, epoch, checkpoint=None).checkpoint is None


def test_fail_retries_or_dead_letters_and_requeue_brings_it_back(client: FleetClient) -> None:
    # Given a job allowed one attempt
    job = client.submit({"queue": "q", "retry": {"max_attempts": 1}}).job
    epoch = claim_one(client).epoch

    # When its attempt fails
    failed = client.fail(job.id, epoch, ErrorInfo(kind="boom", message="no", retryable=True))

    # Then it is dead; an operator's requeue puts it back in the queue
    assert failed.state == "dead_letter" and failed.error is not None and failed.error.kind == "boom"
    assert client.requeue(job.id).state == "queued"


def test_release_gives_the_job_back_and_cancel_ends_it(client: FleetClient) -> None:
    job = client.submit({"queue": "q"}).job
    epoch = claim_one(client).epoch
    released = client.release(job.id, epoch, reason="draining")
    assert released.state == "queued" and released.lease is None
    cancelled = client.cancel(job.id, reason="not needed")
    assert cancelled.state == "cancelled" and cancelled.reason == "not needed"


def test_a_cancel_reaches_the_lease_holder_on_renewal(client: FleetClient) -> None:
    job = client.submit({"queue": "q"}).job
    epoch = claim_one(client).epoch
    client.cancel(job.id)
    assert client.renew(job.id, epoch).cancel_requested is True


def test_complete_reports_each_item_on_its_own(client: FleetClient) -> None:
    # Given two claimed jobs
    a = client.submit({"queue": "q"}).job
    b = client.submit({"queue": "q"}).job
    claimed = {c.job.id: c.epoch for c in client.claim(ClaimRequest(factory_id="host-1", max_jobs=2))}

    # When one succeeds under its epoch and the other is reported under a wrong one
    results = client.complete(
        [
            Completion(job_id=a.id, epoch=claimed[a.id], outcome="succeeded", result=1),
            {"job_id": str(b.id), "epoch": claimed[b.id] + 1, "outcome": "failed", "error": {"kind": "x"}},
        ]
    )

    # Then the first is accepted and the second refused as stale, in order
    assert [r.ok for r in results] == [True, False]
    assert results[1].error is not None and results[1].error.code == "stale-epoch"
    assert results[1].error.details["current_epoch"] == claimed[b.id]
    assert client.get_job(a.id).state == "succeeded"
    assert client.complete([]) == []


def test_heartbeat_and_factories(client: FleetClient) -> None:
    view = client.heartbeat({"factory_id": "gpu-1", "capabilities": ["gpu"], "load": 0.5, "seat_limit": 2})
    assert (view.factory_id, view.health, view.capabilities) == ("gpu-1", "ok", ("gpu",))
    assert [f.factory_id for f in client.list_factories()] == ["gpu-1"]


def test_a_fleet_wide_worker_claims_every_tenants_jobs(make_client: ClientFactory) -> None:
    make_client("acme").submit({"queue": "q"})
    make_client("globex").submit({"queue": "q"})
    worker = make_client(None, Role.WORKER)
    claimed = worker.claim(ClaimRequest(factory_id="shared", max_jobs=10))
    assert sorted(c.job.tenant for c in claimed) == ["acme", "globex"]


def test_quotas_are_set_and_read_back_with_usage(make_client: ClientFactory) -> None:
    admin = make_client("acme", Role.ADMIN)
    admin.submit({"queue": "q"})
    set_view = admin.put_quotas("acme", TenantQuotas(max_queued=5, submits_per_minute=100))
    assert set_view.tenant == "acme" and set_view.quotas.max_queued == 5
    view = admin.get_quotas("acme")
    assert view.quotas == TenantQuotas(max_queued=5, submits_per_minute=100)
    assert view.updated_at is not None
