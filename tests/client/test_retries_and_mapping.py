"""What a healthy test server never does — answer 503, 429 or 502, lose an answer, drop
a connection — played by an httpx ``MockTransport`` whose problem bodies come from the
server's own encoder (``adapters.http.problems``). Checks which calls are retried,
that ``Retry-After`` is honoured, and that every refusal the server can encode comes
back as the same exception with the same fields."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from adapters.auth.tokens import Unauthenticated
from adapters.client import ApiError, FleetClient, RetryPolicy
from adapters.client.errors import from_problem, retry_after
from adapters.client.retry import Transient, call_with_retries
from adapters.http import problems
from coordinator.claiming import ClaimRequest
from coordinator.errors import (
    Conflict,
    FactoryDown,
    Forbidden,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    TenantRequired,
    Unavailable,
)
from domain.errors import (
    DependencyCycle,
    DependencyFailed,
    DomainError,
    IdempotencyConflict,
    IllegalTransition,
    InvalidLease,
    LeaseNotExpired,
    NotDue,
    ProfileConflict,
    RequeueRefused,
    StaleEpoch,
    UnknownDependency,
    UnknownPhase,
)

FAST = RetryPolicy(initial_backoff_seconds=0.001, max_backoff_seconds=0.005, max_attempts=4)
JOB = uuid.UUID("0190f2a4-0000-7000-8000-000000000001")
Handler = Callable[[httpx.Request], httpx.Response]


def served(exc: DomainError) -> httpx.Response:
    """The response the real server sends for ``exc``."""
    response = problems.from_domain(exc)
    return httpx.Response(response.status_code, content=bytes(response.body), headers=dict(response.headers))


def job_json() -> dict[str, object]:
    now = datetime(2026, 1, 5, tzinfo=UTC).isoformat()
    return {
        "id": str(JOB), "tenant": "acme", "state": "queued", "phase": None, "epoch": 0,
        "lease": None, "attempts": 0, "max_attempts": 3, "checkpoint": None, "result": None,
        "error": None, "reason": None, "queue": "q", "kind": "leaf", "priority": 20,
        "capabilities": [], "idempotency_key": None, "parent_id": None, "deps": [], "phases": [],
        "payload": {}, "run_at": None, "available_at": now, "superseded_by": None,
        "supersedes": None, "version": 1, "created_at": now, "updated_at": now,
    }  # fmt: skip


class Script:
    """Answers requests in turn from a list of responses or exceptions to raise."""

    def __init__(self, *steps: httpx.Response | Exception):
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def client_for(script: Script, policy: RetryPolicy = FAST) -> FleetClient:
    return FleetClient("http://fleet.test", "t0ken", retry=policy, transport=httpx.MockTransport(script))


OK_JOB = httpx.Response(200, json=job_json())
SUBMITTED = httpx.Response(201, json={"job": job_json(), "outcome": "created"})
NO_JOBS = httpx.Response(200, json={"jobs": []})


def busy() -> httpx.Response:
    response = served(Unavailable("the pool is exhausted"))
    response.headers["Retry-After"] = "0"
    return response


# ------------------------------------------------------------------ retries


def test_a_read_is_retried_through_503s() -> None:
    script = Script(busy(), busy(), OK_JOB)
    assert client_for(script).get_job(JOB).id == JOB
    assert len(script.requests) == 3


def test_retries_are_bounded_and_end_in_the_servers_error() -> None:
    script = Script(*(busy() for _ in range(4)))
    with pytest.raises(Unavailable, match="the pool is exhausted"):
        client_for(script).get_job(JOB)
    assert len(script.requests) == FAST.max_attempts


def test_a_claim_is_not_retried_once_it_may_have_reached_the_server() -> None:
    for lost in (httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), busy()):
        script = Script(lost, NO_JOBS)
        with pytest.raises(Unavailable):
            client_for(script).claim(ClaimRequest(factory_id="f"))
        assert len(script.requests) == 1


def test_a_claim_is_retried_when_it_surely_never_left() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), NO_JOBS)
    assert client_for(script).claim(ClaimRequest(factory_id="f")) == []
    assert len(script.requests) == 3


def test_an_unsafe_call_is_retried_when_the_server_says_it_rolled_back() -> None:
    script = Script(served(Conflict("version race")), OK_JOB)
    assert client_for(script).cancel(JOB).id == JOB
    assert len(script.requests) == 2


def test_a_submit_is_retried_only_with_an_idempotency_key() -> None:
    unkeyed = Script(busy(), SUBMITTED)
    with pytest.raises(Unavailable):
        client_for(unkeyed).submit({"queue": "q"})
    keyed = Script(busy(), SUBMITTED)
    assert client_for(keyed).submit({"queue": "q"}, idempotency_key="k-1").outcome == "created"
    assert len(keyed.requests) == 2
    assert keyed.requests[0].headers["Idempotency-Key"] == "k-1"


def quota(retry_after_header: str) -> httpx.Response:
    response = served(QuotaExceeded("acme", "max_queued", 1, 1, 0.5))
    response.headers["Retry-After"] = retry_after_header
    return response


def test_429_is_retried_for_safe_calls_within_the_retry_after_limit() -> None:
    keyed = Script(quota("0"), SUBMITTED)
    assert client_for(keyed).submit({"queue": "q", "idempotency_key": "k"}).outcome == "created"
    unkeyed = Script(quota("0"), SUBMITTED)
    with pytest.raises(QuotaExceeded) as refused:
        client_for(unkeyed).submit({"queue": "q"})
    assert refused.value.fields["limit"] == 1
    too_long = Script(quota("3600"), SUBMITTED)
    with pytest.raises(QuotaExceeded):
        client_for(too_long).submit({"queue": "q", "idempotency_key": "k"})
    assert len(too_long.requests) == 1


def test_waits_back_off_with_jitter_and_honour_retry_after() -> None:
    # Given an attempt that fails transiently three times, asking for 2 s once
    failures = [
        Transient(Unavailable("x"), 503, sent=True),
        Transient(Unavailable("x"), 503, sent=True, retry_after=2.0),
        Transient(Unavailable("x"), 503, sent=True),
    ]
    slept: list[float] = []

    def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    # When it runs under a policy with a 1 s backoff cap
    policy = RetryPolicy(initial_backoff_seconds=0.5, max_backoff_seconds=1.0)
    assert call_with_retries(policy, attempt, safe=True, sleep=slept.append) == "done"

    # Then each wait is within the jittered cap, except the one the server asked for
    assert len(slept) == 3
    assert 0 <= slept[0] <= 1.0 and slept[1] >= 2.0 and 0 <= slept[2] <= 1.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    parsed = retry_after(httpx.Headers({"Retry-After": format_datetime(later, usegmt=True)}))
    assert parsed is not None and 25 <= parsed <= 31
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after(httpx.Headers()) is None


# ------------------------------------------------------------------ mapping

REFUSALS: list[DomainError] = [
    StaleEpoch(job_id=JOB, presented=1, current=2, state="queued", command="succeed"),
    IllegalTransition(aggregate="Job", event="JobRequeued", state="queued", allowed_from=["dead_letter"]),
    IdempotencyConflict(key="k", job_id=JOB, state="succeeded"),
    RequeueRefused(JOB, "dependency x has failed"),
    DependencyFailed(JOB, "dead_letter"),
    UnknownDependency([JOB]),
    DependencyCycle(["a", "b", "a"]),
    UnknownPhase(JOB, "zip", ["fetch"]),
    InvalidLease(0.0),
    ProfileConflict("p", 2),
    LeaseNotExpired(JOB, "2026-01-05T09:00:00+00:00"),
    NotDue(JOB, "2026-01-05T09:00:00+00:00"),
    NotFound("job", JOB),
    Forbidden("cancel a job", "submitter"),
    TenantRequired("submit a job"),
    Unauthenticated("the token has expired"),
    FactoryDown("host-1"),
    InvalidRequest("body", [{"loc": "body.queue", "msg": "bad", "type": "pattern"}]),
    QuotaExceeded("acme", "submits_per_minute", 10, 10, 12.5),
    Conflict("version race"),
    Unavailable("the pool is exhausted"),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda e: e.code)
def test_every_refusal_the_server_encodes_decodes_to_the_same_exception(refusal: DomainError) -> None:
    response = served(refusal)
    decoded = from_problem(response.status_code, response.json())
    assert type(decoded) is type(refusal)
    assert decoded.to_dict() == refusal.to_dict()


def test_a_gateway_page_is_unavailable_and_odd_bodies_are_api_errors() -> None:
    gateway = Script(httpx.Response(502, text="<html>Bad Gateway</html>"), OK_JOB)
    assert client_for(gateway).get_job(JOB).id == JOB
    assert isinstance(from_problem(504, "<html>timeout</html>"), Unavailable)
    teapot = from_problem(418, "I'm a teapot")
    assert isinstance(teapot, ApiError) and (teapot.code, teapot.status) == ("http-418", 418)


def test_an_unknown_code_or_unfit_fields_keep_everything_in_an_api_error() -> None:
    newer = from_problem(409, {"code": "budget-spent", "detail": "no money", "usd": 3})
    assert isinstance(newer, ApiError)
    assert (newer.code, newer.status, newer.message, newer.fields["usd"]) == (
        "budget-spent",
        409,
        "no money",
        3,
    )
    odd = from_problem(409, {"code": "stale-epoch", "detail": "stale", "job_id": "not-a-uuid"})
    assert isinstance(odd, ApiError) and odd.code == "stale-epoch"


def test_an_answer_that_does_not_parse_is_a_bad_response() -> None:
    script = Script(httpx.Response(200, json={"unexpected": True}))
    with pytest.raises(ApiError) as refused:
        client_for(script).get_job(JOB)
    assert refused.value.code == "bad-response"
