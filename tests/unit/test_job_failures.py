"""The Job aggregate's failures: retries, dead letters, budgets and requeues."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import (
    IllegalTransition,
    RequeueRefused,
)
from domain.job import JobState
from domain.job import events as e
from domain.retry import retry_delay
from tests.unit.job_factories import (
    FACTORY,
    at,
    fail_now,
    failing,
    job_in,
    leased_job,
    new_events,
    running_job,
    some_insights,
)

S = JobState


# ----------------------------------------------------------------- failures


def test_retryable_failure_waits_for_the_backoff() -> None:
    # Given a running job / When attempt 1 fails retryably
    job = running_job()
    fail_now(job, 10, sample=0.25)
    # Then it is failed until now + retry_delay(policy, 1, sample)
    delay = retry_delay(job.spec.retry, 1, 0.25)
    assert (job.state, job.available_at, job.lease) == (S.FAILED, at(10) + timedelta(seconds=delay), None)
    assert job.runs[-1].outcome == "failed" and job.runs[-1].error_kind == "error"


def test_dead_letter_after_max_attempts_via_fail() -> None:
    # Given two attempts allowed, the first already failed
    job = running_job(retry={"max_attempts": 2})
    fail_now(job, 10)
    job.make_ready(at(1000))
    job.grant_lease(FACTORY, 60, at(1001))
    # When the second attempt fails too
    fail_now(job, 1002)
    # Then the job is parked with the reason
    assert job.state is S.DEAD_LETTER
    assert new_events(job, len(job.pending_events) - 2) == [e.AttemptFailed, e.JobDeadLettered]
    assert job.reason is not None and job.reason.startswith("attempts_exhausted")


def test_dead_letter_after_max_attempts_via_expiry() -> None:
    job = leased_job(retry={"max_attempts": 1}, lease_seconds=60)
    job.expire_lease("lease_timeout", at(61))
    assert job.state is S.DEAD_LETTER
    assert new_events(job, len(job.pending_events) - 2) == [e.LeaseExpired, e.JobDeadLettered]
    assert job.reason is not None and job.reason.startswith("attempts_exhausted")


def test_non_retryable_error_dead_letters_at_once() -> None:
    job = running_job(retry={"max_attempts": 5})
    fail_now(job, 10, error=failing(retryable=False))
    assert job.state is S.DEAD_LETTER
    assert job.reason is not None and job.reason.startswith("non_retryable")


@pytest.mark.parametrize(("kind", "state"), [("flaky", S.FAILED), ("error", S.DEAD_LETTER)])
def test_retry_on_limits_which_kinds_retry(kind: str, state: JobState) -> None:
    job = running_job(retry={"max_attempts": 5, "retry_on": ["flaky"]})
    fail_now(job, 10, error=failing(kind))
    assert job.state is state


@pytest.mark.parametrize(
    "budget", [{"usd": 1.0}, {"tokens": 1000}, {"wall_seconds": 5}], ids=["usd", "tokens", "wall"]
)
def test_spent_budget_dead_letters_instead_of_retrying(budget: dict[str, Any]) -> None:
    # Given a budget / When an attempt fails after spending it (10 s, $1.5, 2000 tokens)
    job = running_job(retry={"max_attempts": 5}, budget=budget)
    fail_now(job, 10, insights=some_insights(cost_usd=1.5, tokens=2000))
    # Then the job is parked for its budget
    assert job.state is S.DEAD_LETTER
    assert job.reason is not None and job.reason.startswith("budget_exhausted")


def test_interim_insights_are_not_counted_twice_against_the_budget() -> None:
    # Given a $1 budget and a run that reported $0.6 so far
    job = running_job(retry={"max_attempts": 5}, budget={"usd": 1.0})
    job.report_insights(1, some_insights(cost_usd=0.6), at(5))
    # When the attempt fails reporting its final usage, still $0.6
    fail_now(job, 10, insights=some_insights(cost_usd=0.6))
    # Then $0.6 was spent, not $1.2: the job retries, as its own budget check agrees
    assert job.state is S.FAILED
    assert not job.budget_exhausted(at(10))


def test_budget_spent_by_an_expired_run_dead_letters() -> None:
    job = leased_job(retry={"max_attempts": 5}, budget={"wall_seconds": 30}, lease_seconds=60)
    job.expire_lease("lease_timeout", at(61))
    assert job.state is S.DEAD_LETTER
    assert job.reason is not None and job.reason.startswith("budget_exhausted")


def test_requeue_resets_the_attempt_budget() -> None:
    # Given a job dead-lettered after its only attempt
    job = running_job(retry={"max_attempts": 1})
    fail_now(job, 10)
    assert (job.state, job.attempts_left) == (S.DEAD_LETTER, 0)
    # When an operator requeues it
    job.requeue("operator", at(20))
    # Then it may run once more; attempts keep counting up, and so does the epoch
    assert (job.state, job.attempts_used, job.attempts_left, job.available_at) == (S.QUEUED, 0, 1, at(20))
    job.grant_lease(FACTORY, 60, at(21))
    assert (job.attempt, job.epoch, job.attempts_used) == (2, 2, 1)
    fail_now(job, 22)
    assert job.state is S.DEAD_LETTER


def test_requeue_refuses_while_a_dependency_has_failed() -> None:
    job = job_in(S.DEAD_LETTER)
    count = len(job.pending_events)
    with pytest.raises(RequeueRefused, match="requeue it first"):
        job.requeue("operator", at(20), failed_dependency=uuid4())
    assert (job.state, len(job.pending_events)) == (S.DEAD_LETTER, count)


def test_requeue_only_from_dead_letter() -> None:
    with pytest.raises(IllegalTransition):
        job_in(S.QUEUED).requeue("operator", at(20))
