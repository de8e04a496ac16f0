"""The Job aggregate's commands: what each decides, records and refuses."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from domain.errors import (
    IllegalTransition,
    InvalidLease,
    LeaseNotExpired,
    NotDue,
    StaleEpoch,
    UnknownPhase,
)
from domain.job import JOB_TRANSITIONS, JobState
from domain.job import events as e
from domain.job.spec import Artifact
from tests.unit.job_factories import (
    FACTORY,
    START,
    at,
    hard_dep,
    job_in,
    leased_job,
    new_events,
    running_job,
    some_insights,
    submitted_job,
)

S = JobState


# ------------------------------------------------------------------- submit


def test_submit_without_deps_or_run_at_is_queued_now() -> None:
    job = submitted_job()
    assert (job.state, job.available_at, job.epoch, job.attempt) == (S.QUEUED, START, 0, 0)
    assert new_events(job, 0) == [e.JobSubmitted]


def test_submit_with_future_run_at_is_scheduled_for_then() -> None:
    run_at = at(3600)
    job = submitted_job(run_at=run_at.isoformat())
    assert (job.state, job.available_at, job.not_before) == (S.SCHEDULED, run_at, run_at)


def test_submit_with_past_run_at_is_queued_now() -> None:
    job = submitted_job(run_at=at(-60).isoformat())
    assert (job.state, job.available_at) == (S.QUEUED, START)


def test_submit_with_unmet_deps_is_blocked_without_availability() -> None:
    dep = hard_dep()
    job = submitted_job(deps=(dep,), deps_met=False, run_at=at(3600).isoformat())
    assert (job.state, job.available_at, job.deps) == (S.BLOCKED, None, (dep,))


def test_content_hash_is_recorded_only_with_an_idempotency_key() -> None:
    assert submitted_job().content_hash is None
    keyed = submitted_job(idempotency_key="k-1")
    assert keyed.content_hash == keyed.spec.content_hash()


# ------------------------------------------------------------------- leases


def test_grant_lease_bumps_epoch_and_attempt_and_opens_a_run() -> None:
    # Given a queued job / When leased for 30 s
    job = submitted_job(lease_seconds=30)
    job.grant_lease(FACTORY, 30, at(5))
    # Then it is assigned under epoch 1, attempt 1, until 35 s
    assert (job.state, job.epoch, job.attempt) == (S.ASSIGNED, 1, 1)
    assert job.lease is not None
    assert (job.lease.factory_id, job.lease.epoch, job.lease.expires_at) == (FACTORY, 1, at(35))
    assert [(r.attempt, r.epoch, r.outcome) for r in job.runs] == [(1, 1, None)]
    assert job.available_at is None


@pytest.mark.parametrize("stale", [0, 2, 99])
def test_stale_epoch_is_refused_and_the_refusal_recorded(stale: int) -> None:
    # Given a job leased under epoch 1
    job = leased_job()
    before, count = job.to_snapshot(), len(job.pending_events)
    # When a worker writes with another epoch
    with pytest.raises(StaleEpoch) as caught:
        job.save_checkpoint(stale, {"step": 3}, at(1))
    # Then the write is refused, a StaleWriteRejected is pending, and nothing else changed
    assert caught.value.fields["presented_epoch"] == stale
    assert caught.value.fields["current_epoch"] == 1
    rejected = job.pending_events[-1]
    assert len(job.pending_events) == count + 1
    assert isinstance(rejected, e.StaleWriteRejected)
    assert (rejected.presented_epoch, rejected.current_epoch, rejected.command) == (stale, 1, "checkpoint")
    # (only the bookkeeping of the last refusal moves, besides the modification time)
    assert job.last_refusal == (stale, "checkpoint")
    unchanged = {"modified_on": before.modified_on, "last_refusal": None}
    assert job.to_snapshot().model_copy(update=unchanged) == before


def test_a_retrying_zombie_is_recorded_once_per_distinct_write() -> None:
    # Given a zombie whose write was refused and recorded
    job = leased_job()
    with pytest.raises(StaleEpoch):
        job.save_checkpoint(0, {"step": 1}, at(1))
    recorded = len(job.pending_events)
    # When it retries the same write again and again
    for i in range(5):
        with pytest.raises(StaleEpoch):
            job.save_checkpoint(0, {"step": 1}, at(2 + i))
    # Then every retry is refused but the history grows by nothing
    assert len(job.pending_events) == recorded
    # And a different write, or the same one after the job moved on, is recorded again
    with pytest.raises(StaleEpoch):
        job.renew_lease(0, None, at(10))
    assert len(job.pending_events) == recorded + 1
    job.save_checkpoint(1, {"step": 2}, at(11))
    with pytest.raises(StaleEpoch):
        job.renew_lease(0, None, at(12))
    assert isinstance(job.pending_events[-1], e.StaleWriteRejected)


def test_current_epoch_write_succeeds() -> None:
    job = leased_job()
    job.save_checkpoint(1, {"step": 3}, at(1))
    assert job.checkpoint == {"step": 3}
    assert isinstance(job.pending_events[-1], e.Checkpointed)


def test_stale_epoch_message_tells_the_worker_to_stop() -> None:
    job = leased_job()
    with pytest.raises(StaleEpoch, match="stop working on the job"):
        job.succeed(7, None, None, at(1))


def test_renew_extends_expiry_and_sets_last_renewed_at() -> None:
    # Given a 60 s lease granted at 0 / When renewed at 50 s
    job = leased_job(lease_seconds=60)
    outcome = job.renew_lease(1, None, at(50))
    # Then it runs until 110 s, and remembers the renewal
    assert (outcome.expires_at, outcome.cancel_requested) == (at(110), False)
    assert job.lease is not None
    assert (job.lease.expires_at, job.lease.last_renewed_at) == (at(110), at(50))


def test_renew_may_ask_for_another_duration() -> None:
    job = leased_job()
    assert job.renew_lease(1, 5, at(10)).expires_at == at(15)


@pytest.mark.parametrize("seconds", [0, -1, 86_401, float("nan"), float("inf")])
def test_lease_durations_outside_a_day_are_refused(seconds: float) -> None:
    # Given a queued job and a leased one
    queued, leased = submitted_job(), leased_job()
    counts = len(queued.pending_events), len(leased.pending_events)
    # When leased or renewed for a bad duration / Then refused, and nothing recorded
    with pytest.raises(InvalidLease):
        queued.grant_lease(FACTORY, seconds, at(1))
    with pytest.raises(InvalidLease):
        leased.renew_lease(1, seconds, at(1))
    assert (len(queued.pending_events), len(leased.pending_events)) == counts
    assert (queued.state, leased.state) == (S.QUEUED, S.ASSIGNED)


def test_renew_after_cancel_tells_the_holder_without_an_event() -> None:
    # Given a leased job that an operator cancels
    job = leased_job()
    job.cancel("no longer needed", "operator", at(5))
    count = len(job.pending_events)
    # When the holder renews with its epoch
    outcome = job.renew_lease(1, None, at(6))
    # Then it learns of the cancel, and nothing is recorded
    assert (outcome.cancel_requested, outcome.expires_at) == (True, None)
    assert len(job.pending_events) == count
    assert (job.state, job.cancelled_epoch, job.lease) == (S.CANCELLED, 1, None)


def test_renew_after_cancel_with_another_epoch_is_stale() -> None:
    job = leased_job()
    job.cancel("no longer needed", "operator", at(5))
    with pytest.raises(StaleEpoch):
        job.renew_lease(2, None, at(6))
    assert isinstance(job.pending_events[-1], e.StaleWriteRejected)


def test_release_requeues_without_bumping_the_epoch() -> None:
    # Given a running job / When its holder releases it
    job = running_job()
    job.release_lease(1, "shutting down", at(10))
    # Then it is queued now, the run ended as released, and the old epoch no longer writes
    assert (job.state, job.lease, job.available_at, job.epoch) == (S.QUEUED, None, at(10), 1)
    assert job.runs[-1].outcome == "released"
    with pytest.raises(StaleEpoch):
        job.save_checkpoint(1, {}, at(11))


def test_expire_refuses_a_lease_that_is_still_valid() -> None:
    # Given a 60 s lease renewed at 50 s
    job = leased_job(lease_seconds=60)
    job.renew_lease(1, None, at(50))
    count = len(job.pending_events)
    # When the reaper, racing the renewal, expires it at 70 s
    with pytest.raises(LeaseNotExpired):
        job.expire_lease("lease_timeout", at(70))
    # Then nothing changed
    assert (job.state, len(job.pending_events)) == (S.ASSIGNED, count)


def test_expire_requeues_bumps_the_epoch_and_keeps_the_checkpoint() -> None:
    # Given a running job with a checkpoint, whose lease ran out at 60 s
    job = running_job(lease_seconds=60)
    job.save_checkpoint(1, {"step": 7}, at(30))
    # When the reaper expires it at 61 s
    job.expire_lease("lease_timeout", at(61))
    # Then it is queued under a new epoch, the checkpoint survives, the run expired
    assert (job.state, job.epoch, job.lease, job.checkpoint) == (S.QUEUED, 2, None, {"step": 7})
    expired = job.pending_events[-1]
    assert isinstance(expired, e.LeaseExpired)
    assert (expired.epoch, expired.new_epoch, expired.expired_at) == (1, 2, at(60))
    assert job.runs[-1].outcome == "expired"
    # And the next lease fences above both
    job.grant_lease(FACTORY, 60, at(62))
    assert (job.epoch, job.attempt) == (3, 2)
    with pytest.raises(StaleEpoch):
        job.succeed(1, None, None, at(63))


def test_factory_down_expires_even_a_valid_lease() -> None:
    job = leased_job()
    job.expire_lease("factory_down", at(1))
    assert (job.state, job.epoch) == (S.QUEUED, 2)


# -------------------------------------------------------------- readiness


@pytest.mark.parametrize("state", [S.SCHEDULED, S.FAILED])
def test_make_ready_before_available_at_is_not_due(state: JobState) -> None:
    job = job_in(state)
    assert job.available_at is not None
    with pytest.raises(NotDue):
        job.make_ready(job.available_at - timedelta(microseconds=1))
    job.make_ready(job.available_at)
    assert (job.state, job.available_at) == (S.QUEUED, job.available_at)


def test_make_ready_refuses_a_blocked_job() -> None:
    # A blocked job leaves through unblock() (its dependencies), never through time
    with pytest.raises(IllegalTransition, match="blocked"):
        job_in(S.BLOCKED).make_ready(at(10**6))


def test_unblock_waits_for_run_at_then_is_ready() -> None:
    # Given a blocked job with run_at in a day
    job = job_in(S.BLOCKED)
    run_at = job.not_before
    # When its dependencies are met early / Then it is scheduled for run_at
    job.unblock(at(10))
    assert (job.state, job.available_at) == (S.SCHEDULED, run_at)
    # When it is blocked again and unblocked late / Then it is ready at once
    job.block((uuid4(),), at(20))
    assert (job.state, job.available_at) == (S.BLOCKED, None)
    job.unblock(at(10**6))
    assert (job.state, job.available_at) == (S.QUEUED, at(10**6))


def test_replace_dependency_rewrites_only_a_known_edge() -> None:
    job = job_in(S.BLOCKED)
    old, new = job.deps[0].job_id, uuid4()
    count = len(job.pending_events)
    job.replace_dependency(uuid4(), new, at(5))
    assert len(job.pending_events) == count
    job.replace_dependency(old, new, at(5))
    assert [d.job_id for d in job.deps] == [new]


# ----------------------------------------------------------- worker reports


def test_report_phase_with_an_undeclared_phase_is_refused() -> None:
    job = leased_job(phases=["plan", "build"])
    count = len(job.pending_events)
    with pytest.raises(UnknownPhase, match="plan, build"):
        job.report_phase(1, "deploy", at(1))
    assert (job.state, job.phase, len(job.pending_events)) == (S.ASSIGNED, None, count)


def test_report_phase_moves_an_assigned_job_to_running() -> None:
    job = leased_job(phases=["plan", "build"])
    job.report_phase(1, "build", at(1))
    assert (job.state, job.phase) == (S.RUNNING, "build")


def test_any_phase_is_accepted_when_none_are_declared() -> None:
    job = leased_job()
    job.report_phase(1, "anything", at(1))
    assert job.phase == "anything"


def test_start_twice_records_once() -> None:
    job = running_job()
    count = len(job.pending_events)
    job.start(1, at(2))
    assert (job.state, len(job.pending_events)) == (S.RUNNING, count)


def test_insights_and_artifacts_attach_to_the_current_run() -> None:
    job = running_job()
    artifact = Artifact(uri="s3://b/k", sha256="a" * 64, size=3)
    job.report_insights(1, some_insights(cost_usd=0.2), at(2))
    job.record_artifact(1, artifact, at(3))
    run = job.runs[-1]
    assert (run.insights, run.artifacts) == (some_insights(cost_usd=0.2), (artifact,))


def test_succeed_ends_the_run_and_keeps_the_result() -> None:
    job = running_job()
    job.succeed(1, {"answer": 42}, some_insights(cost_usd=0.1), at(9))
    assert (job.state, job.result, job.lease) == (S.SUCCEEDED, {"answer": 42}, None)
    assert (job.runs[-1].outcome, job.runs[-1].ended_at) == ("succeeded", at(9))


# ------------------------------------------------------ illegal transitions


def test_illegal_transition_says_what_where_and_from_where() -> None:
    # Given a succeeded job / When leased again
    job = job_in(S.SUCCEEDED)
    count = len(job.pending_events)
    with pytest.raises(IllegalTransition) as caught:
        job.grant_lease(FACTORY, 60, at(10))
    # Then the message names the aggregate, event, state and the allowed sources
    assert str(caught.value) == (
        "Job: LeaseGranted cannot happen in state 'succeeded'; it is allowed from: queued"
    )
    assert caught.value.fields["allowed_from"] == ["queued"]
    assert len(job.pending_events) == count


@pytest.mark.parametrize("state", [S.SUCCEEDED, S.CANCELLED, S.SUPERSEDED])
def test_terminal_jobs_cannot_be_cancelled(state: JobState) -> None:
    with pytest.raises(IllegalTransition, match="JobCancelled cannot happen in state"):
        job_in(state).cancel("again", "operator", at(10))


def test_illegal_target_is_named() -> None:
    with pytest.raises(IllegalTransition, match="with target 'running'"):
        JOB_TRANSITIONS.check(e.JobSubmitted, None, S.RUNNING)


def test_before_creation_is_named() -> None:
    with pytest.raises(IllegalTransition, match="LeaseGranted cannot happen before creation"):
        JOB_TRANSITIONS.check(e.LeaseGranted, None)


def test_domain_errors_serialise_their_fields() -> None:
    job = leased_job()
    with pytest.raises(StaleEpoch) as caught:
        job.renew_lease(5, None, at(1))
    as_dict = caught.value.to_dict()
    assert as_dict["code"] == "stale-epoch"
    assert as_dict["job_id"] == str(job.id)
    assert (as_dict["presented_epoch"], as_dict["current_epoch"], as_dict["state"]) == (5, 1, "assigned")
