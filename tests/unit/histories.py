"""Histories built through commands only: every command tried on a job in every state.

The transition-coverage test proves these histories exercise every table row; the
mapper and projection tests reuse them as a corpus of real events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from domain.errors import DomainError
from domain.events import DomainEvent
from domain.factory import Factory, Health
from domain.job import Job, JobState
from domain.job.spec import Artifact
from domain.tenant import Tenant, TenantQuotas
from tests.unit.job_factories import (
    FACTORY,
    RUN_AT,
    at,
    failing,
    history,
    job_in,
    make_report,
    registered_factory,
    registered_profile,
    some_insights,
    submitted_job,
)

LATER = at(600)
"""After every step the state builders take, before any retry or run_at falls due."""
MUCH_LATER = RUN_AT + (RUN_AT - at(0))
"""After every retry and run_at."""


def attempt(aggregate: Any, command: Callable[[Any], Any]) -> list[DomainEvent]:
    """Run one command; a domain refusal is a legitimate outcome (it may still record)."""
    with contextlib.suppress(DomainError):
        command(aggregate)
    return list(aggregate.pending_events)


# ----------------------------------------------------------------------- job


def _epoch(job: Job) -> int:
    return job.lease.epoch if job.lease is not None else job.epoch


JOB_COMMANDS: dict[str, Callable[[Job], Any]] = {
    "supersede": lambda j: j.supersede(uuid4(), LATER),
    "replace_dependency": lambda j: j.replace_dependency(j.deps[0].job_id, uuid4(), LATER),
    "block": lambda j: j.block((uuid4(),), LATER),
    "unblock_before_run_at": lambda j: j.unblock(LATER),
    "unblock_after_run_at": lambda j: j.unblock(MUCH_LATER),
    "make_ready": lambda j: j.make_ready(MUCH_LATER),
    "grant_lease": lambda j: j.grant_lease(FACTORY, 60, LATER),
    "renew": lambda j: j.renew_lease(_epoch(j), None, LATER),
    "release": lambda j: j.release_lease(_epoch(j), "shutdown", LATER),
    "expire_timeout": lambda j: j.expire_lease("lease_timeout", MUCH_LATER),
    "expire_factory_down": lambda j: j.expire_lease("factory_down", LATER),
    "start": lambda j: j.start(_epoch(j), LATER),
    "phase": lambda j: j.report_phase(_epoch(j), "build", LATER),
    "checkpoint": lambda j: j.save_checkpoint(_epoch(j), {"step": 1}, LATER),
    "insights": lambda j: j.report_insights(_epoch(j), some_insights(0.1), LATER),
    "artifact": lambda j: j.record_artifact(_epoch(j), Artifact(uri="f", sha256="0" * 64, size=1), LATER),
    "succeed": lambda j: j.succeed(_epoch(j), None, None, LATER),
    "fail_retryable": lambda j: j.fail(_epoch(j), failing(), None, LATER, 0.5),
    "fail_fatal": lambda j: j.fail(_epoch(j), failing(retryable=False), None, LATER, 0.5),
    "cancel": lambda j: j.cancel("test", "operator", LATER),
    "dead_letter_for_dependency": lambda j: j.dead_letter_for_dependency(uuid4(), "cancelled", LATER),
    "requeue": lambda j: j.requeue("operator", LATER),
    "stale_write": lambda j: j.save_checkpoint(_epoch(j) + 100, {}, LATER),
}


def expired_on_the_last_attempt() -> Job:
    job = submitted_job(retry={"max_attempts": 1})
    job.grant_lease(FACTORY, 60, at(1))
    job.expire_lease("lease_timeout", LATER)
    return job


JOB_SCENARIOS: list[Callable[[], Job]] = [expired_on_the_last_attempt]
"""Multi-step paths that matter on their own: the reaper's expiry that dead-letters."""


def job_histories() -> list[list[DomainEvent]]:
    histories = [attempt(job_in(state), command) for state in JobState for command in JOB_COMMANDS.values()]
    histories += [history(scenario()) for scenario in JOB_SCENARIOS]
    return histories


# ------------------------------------------------------------------- factory


def heartbeat(health: Health) -> Callable[[Factory], Any]:
    return lambda factory: factory.heartbeat(make_report(health=health), LATER)


FACTORY_COMMANDS: dict[str, Callable[[Factory], Any]] = {
    **{f"heartbeat_{health}": heartbeat(health) for health in Health},
    "mark_down": lambda f: f.mark_down(LATER),
}


def factory_histories() -> list[list[DomainEvent]]:
    return [
        attempt(registered_factory(health=health), command)
        for health in Health
        for command in FACTORY_COMMANDS.values()
    ]


def profile_histories() -> list[list[DomainEvent]]:
    return [history(registered_profile())]


# -------------------------------------------------------------------- tenant


TENANT_COMMANDS: dict[str, Callable[[Tenant], Any]] = {
    "set_quotas": lambda t: t.set_quotas(TenantQuotas(max_queued=3, max_in_flight=1), "admin", LATER),
    "set_the_same_quotas": lambda t: t.set_quotas(t.quotas, "admin", LATER),
    "refuse_admission": lambda t: t.refuse_admission(
        "max_queued", limit=3, current=3, requested=1, now=LATER
    ),
}


def tenant_histories() -> list[list[DomainEvent]]:
    return [attempt(Tenant.register("acme", at(0)), command) for command in TENANT_COMMANDS.values()]
