"""Factories for unit tests: specs, jobs in every state, factories, profiles.

Everything is built through commands only (never by assigning attributes), so a job
"in state X" carries a real history in its pending events. Time is a datetime passed
in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from domain.events import DomainEvent
from domain.factory import Factory, FactoryReport
from domain.job import Job, JobSpec, JobState
from domain.job.spec import Dependency, DependencyMode, ErrorInfo, RunInsights
from domain.profile import Profile, ProfileSpec

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FACTORY = "factory-1"
RUN_AT = START + timedelta(days=1)
"""The future ``run_at`` of the scheduled and blocked jobs ``job_in`` builds."""

S = JobState


def at(seconds: float) -> datetime:
    """START plus ``seconds``: tests speak in offsets, the domain in datetimes."""
    return START + timedelta(seconds=seconds)


def make_spec(**overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {"payload": {"n": 1}, "retry": {"max_attempts": 2}}
    fields.update(overrides)
    return JobSpec.model_validate(fields)


def hard_dep(job_id: UUID | None = None) -> Dependency:
    return Dependency(job_id=job_id or uuid4(), mode=DependencyMode.HARD)


def submitted_job(
    *,
    deps: tuple[Dependency, ...] = (),
    deps_met: bool = True,
    now: datetime = START,
    tenant: str = "acme",
    job_id: UUID | None = None,
    **spec_overrides: Any,
) -> Job:
    return Job.submit(
        job_id=job_id or uuid4(),
        tenant=tenant,
        spec=make_spec(**spec_overrides),
        deps=deps,
        deps_met=deps_met,
        now=now,
    )


def leased_job(**overrides: Any) -> Job:
    """A job leased to FACTORY at START (epoch 1, attempt 1)."""
    job = submitted_job(**overrides)
    job.grant_lease(FACTORY, job.spec.lease_seconds, START)
    return job


def running_job(**overrides: Any) -> Job:
    job = leased_job(**overrides)
    job.start(job.epoch, at(1))
    return job


def failing(kind: str = "error", retryable: bool = True) -> ErrorInfo:
    return ErrorInfo(kind=kind, message="boom", retryable=retryable)


def new_events(job: Job, before: int) -> list[type]:
    """The classes of the events recorded after the first ``before``."""
    return [type(ev) for ev in job.pending_events[before:]]


def fail_now(job: Job, when: float, error: Any = None, insights: Any = None, sample: float = 0.5) -> None:
    """The current holder fails the attempt at ``at(when)``."""
    job.fail(job.epoch, error or failing(), insights, at(when), jitter_sample=sample)


def history(aggregate: Job | Factory | Profile) -> list[DomainEvent]:
    """The events so far (a fresh aggregate keeps its whole history pending)."""
    return list(aggregate.pending_events)  # type: ignore[arg-type]


# ------------------------------------------------------------- jobs by state


def _blocked() -> Job:
    return submitted_job(deps=(hard_dep(),), deps_met=False, run_at=RUN_AT.isoformat())


def _scheduled() -> Job:
    return submitted_job(deps=(hard_dep(),), run_at=RUN_AT.isoformat())


def _queued() -> Job:
    return submitted_job(deps=(hard_dep(),))


def _assigned() -> Job:
    return leased_job(deps=(hard_dep(),))


def _running() -> Job:
    return running_job(deps=(hard_dep(),))


def _failed() -> Job:
    job = _running()
    job.fail(job.epoch, failing(), None, at(2), jitter_sample=0.5)
    return job


def _dead_letter() -> Job:
    job = _running()
    job.fail(job.epoch, failing(retryable=False), None, at(2), jitter_sample=0.5)
    return job


def _succeeded() -> Job:
    job = _running()
    job.succeed(job.epoch, {"ok": True}, None, at(2))
    return job


def _cancelled() -> Job:
    job = _queued()
    job.cancel("not needed", "operator", at(1))
    return job


def _superseded() -> Job:
    job = _queued()
    job.supersede(uuid4(), at(1))
    return job


JOB_BUILDERS: dict[JobState, Callable[[], Job]] = {
    S.BLOCKED: _blocked,
    S.SCHEDULED: _scheduled,
    S.QUEUED: _queued,
    S.ASSIGNED: _assigned,
    S.RUNNING: _running,
    S.FAILED: _failed,
    S.DEAD_LETTER: _dead_letter,
    S.SUCCEEDED: _succeeded,
    S.CANCELLED: _cancelled,
    S.SUPERSEDED: _superseded,
}
"""One builder per state; each job has one hard dependency and at most 2 attempts,
and every step happened before ``at(10)``."""


def job_in(state: JobState) -> Job:
    job = JOB_BUILDERS[state]()
    assert job.state is state, f"builder for {state} produced {job.state}"
    return job


# ------------------------------------------------------- factories, profiles


def make_report(**overrides: Any) -> FactoryReport:
    fields: dict[str, Any] = {"factory_id": FACTORY, "capabilities": ["gpu", "cpu"], "seat_limit": 4}
    fields.update(overrides)
    return FactoryReport.model_validate(fields)


def registered_factory(now: datetime = START, **overrides: Any) -> Factory:
    return Factory.register(make_report(**overrides), now)


def registered_profile(now: datetime = START, **overrides: Any) -> Profile:
    fields: dict[str, Any] = {"name": "coder", "version": 1, "content": {"model": "m-1"}}
    fields.update(overrides)
    return Profile.register("acme", ProfileSpec.model_validate(fields), now)


def some_insights(cost_usd: float = 0.0, tokens: int = 0) -> RunInsights:
    return RunInsights(cost_usd=cost_usd, tokens_in=tokens)
