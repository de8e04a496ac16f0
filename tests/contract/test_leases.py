"""Leases and fencing: renewals, stale epochs, release, cancel seen on renewal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coordinator.errors import NotFound
from coordinator.fleet import Fleet
from domain.errors import IllegalTransition, InvalidLease, StaleEpoch, UnknownPhase
from domain.job.spec import Artifact, ErrorInfo, RunInsights
from tests.contract.helpers import claim_one, history_types, submit
from tests.support import FakeClock, tenant

ACME = tenant("acme")


def test_a_stale_epoch_is_refused_and_the_refusal_recorded(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, lease_seconds=10)
    first = claim_one(fleet, ACME, "zombie-host")
    clock.advance(11)
    fleet.reaper.run_once()
    second = claim_one(fleet, ACME, "healthy-host")
    assert second.epoch > first.epoch
    # When the zombie writes with its old epoch
    with pytest.raises(StaleEpoch) as refused:
        fleet.succeed(ACME, job, first.epoch, {"from": "zombie"})
    # Then the write is refused, recorded, and the job is untouched
    assert refused.value.fields["current_epoch"] == second.epoch
    history = fleet.history(ACME, job)
    assert history[-1].type == "StaleWriteRejected"
    assert history[-1].data == {
        "presented_epoch": first.epoch,
        "current_epoch": second.epoch,
        "command": "succeed",
    }
    assert fleet.get(ACME, job).state == "assigned"
    # And the current holder's write succeeds
    fleet.succeed(ACME, job, second.epoch, {"from": "healthy"})
    assert fleet.get(ACME, job).result == {"from": "healthy"}


@pytest.mark.parametrize(
    "command", ["renew", "release", "start", "phase", "checkpoint", "insights", "artifact", "fail"]
)
def test_every_worker_write_is_fenced(fleet: Fleet, command: str) -> None:
    job = submit(fleet, ACME, phases=["p"])
    current = claim_one(fleet, ACME).epoch
    writes = {
        "renew": lambda e: fleet.renew(ACME, job, e),
        "release": lambda e: fleet.release(ACME, job, e),
        "start": lambda e: fleet.start(ACME, job, e),
        "phase": lambda e: fleet.report_phase(ACME, job, e, "p"),
        "checkpoint": lambda e: fleet.checkpoint(ACME, job, e, {"x": 1}),
        "insights": lambda e: fleet.report_insights(ACME, job, e, RunInsights(tokens_in=5)),
        "artifact": lambda e: fleet.record_artifact(
            ACME, job, e, Artifact(uri="s3://b/k", sha256="a" * 64, size=3)
        ),
        "fail": lambda e: fleet.fail(ACME, job, e, ErrorInfo(kind="boom")),
    }
    with pytest.raises(StaleEpoch):
        writes[command](current + 1)
    assert history_types(fleet, ACME, job)[-1] == "StaleWriteRejected"
    writes[command](current)


def test_renewals_extend_the_lease_and_history_shows_the_last_one(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, lease_seconds=10)
    c = claim_one(fleet, ACME)
    clock.advance(8)
    renewed = fleet.renew(ACME, job, c.epoch)
    assert renewed.lease_expires_at == clock.now() + timedelta(seconds=10)
    assert not renewed.cancel_requested
    clock.advance(8)
    fleet.renew(ACME, job, c.epoch, lease_seconds=30)
    view = fleet.get(ACME, job)
    assert view.lease is not None and view.lease.last_renewed_at == clock.now()
    assert view.lease.expires_at == clock.now() + timedelta(seconds=30)
    # The reaper leaves a renewed lease alone
    clock.advance(20)
    assert fleet.reaper.run_once().expired == 0
    assert [h.type for h in fleet.history(ACME, job)].count("LeaseRenewed") == 2


def test_cancel_of_a_leased_job_is_seen_on_the_next_renewal(fleet: Fleet) -> None:
    job = submit(fleet, ACME)
    c = claim_one(fleet, ACME)
    fleet.cancel(ACME, job, "no longer needed")
    assert fleet.get(ACME, job).state == "cancelled"
    assert fleet.get(ACME, job).lease is None
    renewal = fleet.renew(ACME, job, c.epoch)
    assert renewal.cancel_requested and renewal.lease_expires_at is None
    # Writes after the cancel are refused
    with pytest.raises(StaleEpoch):
        fleet.succeed(ACME, job, c.epoch)


def test_release_returns_the_job_to_the_queue(fleet: Fleet) -> None:
    job = submit(fleet, ACME)
    c = claim_one(fleet, ACME, "host-a")
    fleet.checkpoint(ACME, job, c.epoch, {"at": 7})
    fleet.release(ACME, job, c.epoch, "shutting down")
    view = fleet.get(ACME, job)
    assert (view.state, view.lease, view.checkpoint) == ("queued", None, {"at": 7})
    again = claim_one(fleet, ACME, "host-b")
    assert again.job.checkpoint == {"at": 7}
    assert again.epoch == c.epoch + 1


def test_phases_start_and_runs(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, phases=["building", "review"])
    c = claim_one(fleet, ACME, "host-a")
    fleet.start(ACME, job, c.epoch)
    assert fleet.get(ACME, job).state == "running"
    with pytest.raises(UnknownPhase):
        fleet.report_phase(ACME, job, c.epoch, "deploy")
    fleet.report_phase(ACME, job, c.epoch, "review")
    fleet.record_artifact(
        ACME, job, c.epoch, Artifact(uri="s3://bucket/log.txt", sha256="b" * 64, size=10, kind="log")
    )
    clock.advance(3)
    fleet.succeed(
        ACME, job, c.epoch, {"ok": 1}, RunInsights(model="m", tokens_in=10, tokens_out=5, cost_usd=0.01)
    )
    runs = fleet.runs(ACME, job)
    assert len(runs) == 1
    run = runs[0]
    assert (run.attempt, run.factory_id, run.outcome) == (1, "host-a", "succeeded")
    assert run.insights is not None and run.insights.tokens_in == 10
    assert [a.model_dump() for a in run.artifacts] == [
        {"uri": "s3://bucket/log.txt", "sha256": "b" * 64, "size": 10, "kind": "log"}
    ]
    assert run.ended_at == run.started_at + timedelta(seconds=3)


def test_terminal_jobs_refuse_further_transitions(fleet: Fleet) -> None:
    job = submit(fleet, ACME)
    c = claim_one(fleet, ACME)
    fleet.succeed(ACME, job, c.epoch)
    with pytest.raises(IllegalTransition):
        fleet.cancel(ACME, job)
    with pytest.raises(NotFound):
        fleet.succeed(ACME, __import__("uuid").uuid4(), 1)


@pytest.mark.parametrize("seconds", [-100, 0, 86_401, float("nan"), 1e12])
def test_absurd_lease_lengths_are_refused(fleet: Fleet, seconds: float) -> None:
    job = submit(fleet, ACME)
    c = claim_one(fleet, ACME)
    with pytest.raises(InvalidLease):
        fleet.renew(ACME, job, c.epoch, lease_seconds=seconds)
    assert history_types(fleet, ACME, job) == ["JobSubmitted", "LeaseGranted"]
