"""Refusals from a real server come back as the exceptions the coordinator raised,
with their fields: a caller of ``FleetClient`` handles ``StaleEpoch`` or ``NotFound``
exactly as a caller of ``Fleet`` does."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.auth import TokenAuthority
from adapters.auth.tokens import Unauthenticated
from adapters.client import ApiError, FleetClient
from coordinator.claiming import ClaimRequest
from coordinator.errors import FactoryDown, Forbidden, InvalidRequest, NotFound, QuotaExceeded, Unavailable
from coordinator.identity import Role
from domain.errors import IdempotencyConflict, IllegalTransition, StaleEpoch, UnknownDependency
from tests.client.conftest import ClientFactory
from tests.http.live import LiveServer


def test_a_stale_epoch_is_a_stale_epoch_with_its_fields(client: FleetClient) -> None:
    # Given a job whose lease was given back, so epoch 1 no longer holds it
    job = client.submit({"queue": "q"}).job
    [claimed] = client.claim(ClaimRequest(factory_id="host-1"))
    client.release(job.id, claimed.epoch)
    [again] = client.claim(ClaimRequest(factory_id="host-2"))

    # When the first holder writes under its old epoch
    with pytest.raises(StaleEpoch) as refused:
        client.checkpoint(job.id, claimed.epoch, {"late": True})

    # Then the refusal names the job, both epochs, the state and the command
    assert refused.value.fields == {
        "job_id": job.id,
        "presented_epoch": claimed.epoch,
        "current_epoch": again.epoch,
        "state": "assigned",
        "command": "checkpoint",
    }
    assert "no longer holds the lease" in refused.value.message
    # And renewals and releases under it are refused the same way
    with pytest.raises(StaleEpoch):
        client.renew(job.id, claimed.epoch)
    with pytest.raises(StaleEpoch):
        client.release(job.id, claimed.epoch)
    assert [h.type for h in client.history(job.id)].count("StaleWriteRejected") == 3


def test_another_tenants_job_is_not_found_like_a_missing_one(make_client: ClientFactory) -> None:
    job = make_client("acme").submit({"queue": "q"}).job
    other = make_client("globex")
    with pytest.raises(NotFound) as theirs:
        other.get_job(job.id)
    with pytest.raises(NotFound) as missing:
        other.get_job(uuid.uuid4())
    assert theirs.value.fields == {"kind": "job", "id": str(job.id)}
    assert type(theirs.value) is type(missing.value)
    with pytest.raises(NotFound):
        other.cancel(job.id)


@pytest.mark.parametrize("token_kind", ["garbage", "wrong-secret", "expired"])
def test_bad_tokens_are_unauthenticated(live_server: LiveServer, token_kind: str) -> None:
    now = datetime.now(UTC)
    token = {
        "garbage": "not.a.jwt",
        "wrong-secret": TokenAuthority(b"another-secret-" + b"y" * 40).issue(
            "x", "acme", [Role.READER], ttl_seconds=60, now=now
        ),
        "expired": live_server.authority.issue(
            "x", "acme", [Role.READER], ttl_seconds=60, now=now - timedelta(hours=1)
        ),
    }[token_kind]
    with FleetClient(live_server.url, token) as client, pytest.raises(Unauthenticated) as refused:
        client.list_jobs()
    assert refused.value.fields["reason"]
    assert refused.value.code == "unauthenticated"


def test_a_missing_role_is_forbidden(make_client: ClientFactory) -> None:
    job = make_client("acme").submit({"queue": "q"}).job
    reader = make_client("acme", Role.READER)
    with pytest.raises(Forbidden) as refused:
        reader.cancel(job.id)
    assert refused.value.fields == {"action": "cancel a job", "needs": "submitter"}
    with pytest.raises(Forbidden):
        make_client("acme", Role.SUBMITTER).claim(ClaimRequest(factory_id="host-1"))


def test_domain_refusals_keep_their_types(client: FleetClient) -> None:
    job = client.submit({"queue": "q", "idempotency_key": "k"}).job
    with pytest.raises(IllegalTransition) as illegal:
        client.requeue(job.id)  # only a dead or failed job can be requeued
    assert illegal.value.fields["state"] == "queued"
    client.cancel(job.id)
    with pytest.raises(IdempotencyConflict) as conflict:
        client.submit({"queue": "q", "idempotency_key": "k", "payload": {"other": 1}})
    assert conflict.value.fields["job_id"] == job.id
    ghost = uuid.uuid4()
    with pytest.raises(UnknownDependency) as unknown:
        client.submit({"queue": "q", "deps": [str(ghost)]})
    assert unknown.value.fields["ids"] == [ghost]


def test_invalid_requests_fail_before_or_at_the_server(client: FleetClient) -> None:
    # Client side: the wire model refuses it before anything is sent
    with pytest.raises(InvalidRequest) as local:
        client.claim(ClaimRequest(factory_id="host-1", max_jobs=500))
    assert any("max_jobs" in e["loc"] for e in local.value.fields["errors"])
    # Server side: the query string is the server's to validate
    job = client.submit({"queue": "q"}).job
    with pytest.raises(InvalidRequest) as remote:
        client.state_at(job.id, 0)
    assert remote.value.fields["errors"][0]["loc"] == "query.version"


def test_a_factory_marked_down_must_heartbeat_before_claiming(client: FleetClient) -> None:
    # Given a factory whose heartbeats stopped, marked down by the server's reaper
    client.heartbeat({"factory_id": "flaky", "heartbeat_timeout_seconds": 0.2})
    deadline = time.monotonic() + 10
    while next(f for f in client.list_factories() if f.factory_id == "flaky").health != "down":
        assert time.monotonic() < deadline, "the reaper never marked the factory down"
        time.sleep(0.05)

    # When it claims, it is told so; after a heartbeat it claims again
    with pytest.raises(FactoryDown) as down:
        client.claim(ClaimRequest(factory_id="flaky"))
    assert down.value.fields["factory"] == "flaky"
    client.heartbeat({"factory_id": "flaky"})
    assert client.claim(ClaimRequest(factory_id="flaky")) == []


def test_a_quota_refusal_is_quota_exceeded_with_its_fields(make_client: ClientFactory) -> None:
    # Given a tenant allowed one queued job, which it has
    make_client("acme", Role.ADMIN).put_quotas("acme", {"max_queued": 1})
    client = make_client("acme")
    client.submit({"queue": "q"})

    # When it submits another (without a key: not retried, backpressure reaches the caller)
    started = time.monotonic()
    with pytest.raises(QuotaExceeded) as refused:
        client.submit({"queue": "q"})

    # Then the refusal names the tenant, the quota, the limit and the usage
    fields = refused.value.fields
    assert (fields["tenant"], fields["quota"], fields["limit"], fields["current"]) == (
        "acme",
        "max_queued",
        1,
        1,
    )
    assert fields["retry_after_seconds"] > 0
    assert time.monotonic() - started < 1.0


def test_an_unreachable_server_is_unavailable(live_server: LiveServer) -> None:
    # Given a port nobody listens on
    with FleetClient(free_port_url(), live_server.token("acme")) as client:
        # Then reads (retried) and claims (retried: never sent) end as Unavailable
        started = time.monotonic()
        with pytest.raises(Unavailable):
            client.get_job(uuid.uuid4())
        with pytest.raises(Unavailable):
            client.claim(ClaimRequest(factory_id="host-1"))
        assert time.monotonic() - started < 15


def test_an_unknown_problem_is_an_api_error(client: FleetClient) -> None:
    # The server's route-not-found has no typed counterpart on this side
    with pytest.raises(ApiError) as refused:
        client._session.call("GET", "/v1/nowhere", lambda r: r, safe=True)
    assert (refused.value.code, refused.value.status) == ("route-not-found", 404)


# -------------------------------------------------------------------- helpers


def free_port_url() -> str:
    """A URL on 127.0.0.1 whose port was just free (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_worker_only_token_can_write_under_its_lease(make_client: ClientFactory) -> None:
    job = make_client("acme").submit({"queue": "q"}).job
    worker = make_client("acme", Role.WORKER)
    [claimed] = worker.claim(ClaimRequest(factory_id="host-1"))
    assert worker.checkpoint(job.id, claimed.epoch, {"at": 1}).checkpoint == {"at": 1}
    assert worker.release(job.id, claimed.epoch).state == "queued"
