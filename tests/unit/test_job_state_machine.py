"""A hypothesis state machine over Job aggregates alone.

Several jobs, a fake time that only moves forward, and every command with random
(often stale) epochs. Domain refusals are legitimate outcomes; what must never happen
is a broken invariant: two leases, a lease that disagrees with the state, an epoch
that goes down or is granted twice, a terminal state that changes, a refusal that
changes anything, or a live job that differs from its replayed or restored self.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from adapters.eventstore.mapper import JSONTextTranscoder, PydanticMapper
from domain.errors import (
    IllegalTransition,
    InvalidLease,
    LeaseNotExpired,
    NotDue,
    RequeueRefused,
    StaleEpoch,
    UnknownPhase,
)
from domain.events import DomainEvent
from domain.job import Job, JobSnapshot, JobState, RenewOutcome
from domain.job import events as e
from domain.job.spec import Artifact
from domain.job.states import LEASED, TERMINAL
from tests.unit.job_factories import START, failing, hard_dep, make_spec, some_insights

REFUSALS = (IllegalTransition, InvalidLease, LeaseNotExpired, NotDue, UnknownPhase, RequeueRefused)
PHASES = ("plan", "build", "test")

epochs = st.one_of(st.none(), st.none(), st.integers(0, 8))
"""None (mostly): the epoch the current (or cancelled) holder has; an integer: anything,
often stale."""
checkpoints = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


WAITING_ON_SERVICES = frozenset({JobState.SCHEDULED, JobState.FAILED, JobState.BLOCKED})

OPERATOR: dict[str, Callable[[Job, datetime], Any]] = {
    "cancel": lambda j, now: j.cancel("test", "operator", now),
    "requeue": lambda j, now: j.requeue("operator", now),
    "requeue_refused": lambda j, now: j.requeue("operator", now, failed_dependency=uuid4()),
    "supersede": lambda j, now: j.supersede(uuid4(), now),
    "dependency_failed": lambda j, now: j.dead_letter_for_dependency(uuid4(), "cancelled", now),
    "block": lambda j, now: j.block((uuid4(),), now),
    "replace_dependency": lambda j, now: j.replace_dependency(j.deps[0].job_id, uuid4(), now),
}

ANY_COMMAND: dict[str, Callable[[Job, int, datetime], Any]] = {
    "grant_lease": lambda j, n, now: j.grant_lease("factory-2", 60, now),
    "grant_invalid_lease": lambda j, n, now: j.grant_lease("factory-2", 86_401, now),
    "renew_invalid_lease": lambda j, n, now: j.renew_lease(n, 0, now),
    "renew": lambda j, n, now: j.renew_lease(n, None, now),
    "start": lambda j, n, now: j.start(n, now),
    "phase": lambda j, n, now: j.report_phase(n, "build", now),
    "checkpoint": lambda j, n, now: j.save_checkpoint(n, {"n": n}, now),
    "succeed": lambda j, n, now: j.succeed(n, None, None, now),
    "fail": lambda j, n, now: j.fail(n, failing(), None, now, 0.5),
    "release": lambda j, n, now: j.release_lease(n, "shutdown", now),
    "expire": lambda j, n, now: j.expire_lease("lease_timeout", now),
    "make_ready": lambda j, n, now: j.make_ready(now),
    "unblock": lambda j, n, now: j.unblock(now),
    **{name: (lambda j, n, now, op=op: op(j, now)) for name, op in OPERATOR.items()},  # type: ignore[misc]
}


def without_clock(snapshot: JobSnapshot) -> dict[str, Any]:
    """A snapshot minus ``modified_on``, which every recorded event moves, and the
    bookkeeping of the last refused write (which only refusals move)."""
    return snapshot.model_dump(exclude={"modified_on", "last_refusal"})


def holder_epoch(job: Job, chosen: int | None) -> int:
    if chosen is not None:
        return chosen
    if job.lease is not None:
        return job.lease.epoch
    return job.cancelled_epoch if job.cancelled_epoch is not None else job.epoch


class JobMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.live: dict[UUID, Job] = {}
        self.history: dict[UUID, list[DomainEvent]] = {}
        self.high_epoch: dict[UUID, int] = {}
        self.high_attempt: dict[UUID, int] = {}
        self.ended: dict[UUID, JobState] = {}
        self.touched: UUID | None = None

    # ------------------------------------------------------------------ time

    @rule(seconds=st.sampled_from([0, 1, 5, 29, 31, 61, 301, 1201]))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.touched = None

    # ------------------------------------------------------------ submission

    @rule(
        target=jobs,
        deps_met=st.sampled_from([True, True, True, False]),
        run_in=st.none() | st.sampled_from([-60, 0, 30, 600]),
        max_attempts=st.integers(1, 3),
        phases=st.sampled_from([(), PHASES]),
        retry_on=st.sampled_from([None, ["flaky"]]),
        budget=st.sampled_from([None, {"usd": 1.0}, {"wall_seconds": 120}]),
        keyed=st.booleans(),
    )
    def submit(
        self,
        *,
        deps_met: bool,
        run_in: int | None,
        max_attempts: int,
        phases: tuple[str, ...],
        retry_on: list[str] | None,
        budget: dict[str, float] | None,
        keyed: bool,
    ) -> UUID:
        spec = make_spec(
            run_at=None if run_in is None else (self.now + timedelta(seconds=run_in)).isoformat(),
            retry={"max_attempts": max_attempts, "retry_on": retry_on, "base_seconds": 5, "max_seconds": 60},
            phases=list(phases),
            budget=budget,
            idempotency_key=f"key-{uuid4()}" if keyed else None,
        )
        job = Job.submit(
            job_id=uuid4(), tenant="acme", spec=spec, deps=(hard_dep(),), deps_met=deps_met, now=self.now
        )
        self.live[job.id] = job
        self.history[job.id] = list(job.collect_events())  # type: ignore[arg-type]
        self.high_epoch[job.id] = self.high_attempt[job.id] = 0
        self.touched = job.id
        return job.id

    # -------------------------------------------------------------- commands

    def _do(self, job_id: UUID, command: Callable[[Job], Any]) -> None:
        job = self.live[job_id]
        before = job.to_snapshot()
        self.touched = job_id
        try:
            outcome = command(job)
        except StaleEpoch as refused:
            # The refusal is recorded (unless it repeats the refusal just recorded), and
            # changes nothing but the clock of the stream.
            new = job.collect_events()
            repeat = before.last_refusal == (refused.fields["presented_epoch"], refused.fields["command"])
            assert [type(ev) for ev in new] == ([] if repeat else [e.StaleWriteRejected])
            assert without_clock(job.to_snapshot()) == without_clock(before)
        except REFUSALS:
            new = job.collect_events()
            assert new == [], f"a refused command recorded {new}"
            assert job.to_snapshot() == before
        else:
            new = job.collect_events()
            if isinstance(outcome, RenewOutcome):
                # "Cancelled" exactly when the job was cancelled under this lease; no event then.
                assert outcome.cancel_requested == (before.state is JobState.CANCELLED)
                assert outcome.cancel_requested == (new == [])
        self.history[job_id].extend(new)  # type: ignore[arg-type]
        if before.state in TERMINAL:
            assert job.state is before.state, f"terminal {before.state} became {job.state}"

    def _nth(self, nth: int, states: frozenset[JobState]) -> UUID | None:
        candidates = [j.id for j in self.live.values() if j.state in states]
        return candidates[nth % len(candidates)] if candidates else None

    def _holder_write(self, nth: int, epoch: int | None, write: Callable[[Job, int], Any]) -> None:
        """A write by (mostly) the current holder of the nth leased job."""
        job_id = self._nth(nth, LEASED)
        assert job_id is not None
        self._do(job_id, lambda j: write(j, holder_epoch(j, epoch)))

    # Workers: rules over leased jobs (precondition), with mostly current epochs.

    @rule(nth=st.integers(0, 9), seconds=st.sampled_from([30, 60]))
    def grant_lease(self, nth: int, seconds: int) -> None:
        job_id = self._nth(nth, frozenset({JobState.QUEUED}))
        if job_id is not None:
            self._do(job_id, lambda j: j.grant_lease("factory-1", seconds, self.now))

    @precondition(lambda self: self._nth(0, LEASED) is not None)
    @rule(nth=st.integers(0, 9), epoch=epochs, seconds=st.none() | st.sampled_from([10, 60]))
    def renew(self, nth: int, epoch: int | None, seconds: int | None) -> None:
        self._holder_write(nth, epoch, lambda j, n: j.renew_lease(n, seconds, self.now))

    @precondition(lambda self: self._nth(0, LEASED) is not None)
    @rule(
        nth=st.integers(0, 9),
        epoch=epochs,
        report=st.sampled_from([*PHASES, "deploy", "start", "checkpoint", "insights", "artifact"]),
        value=checkpoints,
        cost=st.sampled_from([0.0, 0.4, 0.7]),
    )
    def report(self, nth: int, epoch: int | None, report: str, value: Any, cost: float) -> None:
        artifact = Artifact(uri="s3://bucket/out", sha256="f" * 64, size=10)
        reports: dict[str, Callable[[Job, int], Any]] = {
            "start": lambda j, n: j.start(n, self.now),
            "checkpoint": lambda j, n: j.save_checkpoint(n, value, self.now),
            "insights": lambda j, n: j.report_insights(n, some_insights(cost), self.now),
            "artifact": lambda j, n: j.record_artifact(n, artifact, self.now),
        }
        self._holder_write(nth, epoch, reports.get(report, lambda j, n: j.report_phase(n, report, self.now)))

    @precondition(lambda self: self._nth(0, LEASED) is not None)
    @rule(nth=st.integers(0, 9), epoch=epochs, result=checkpoints)
    def succeed(self, nth: int, epoch: int | None, result: Any) -> None:
        self._holder_write(nth, epoch, lambda j, n: j.succeed(n, result, None, self.now))

    @precondition(lambda self: self._nth(0, LEASED) is not None)
    @rule(
        nth=st.integers(0, 9),
        epoch=epochs,
        kind=st.sampled_from(["error", "flaky"]),
        retryable=st.booleans(),
        cost=st.none() | st.sampled_from([0.3, 0.8]),
        sample=st.floats(0, 1, exclude_max=True),
    )
    def fail(
        self, *, nth: int, epoch: int | None, kind: str, retryable: bool, cost: float | None, sample: float
    ) -> None:
        insights = None if cost is None else some_insights(cost)
        error = failing(kind, retryable)
        self._holder_write(nth, epoch, lambda j, n: j.fail(n, error, insights, self.now, sample))

    @precondition(lambda self: self._nth(0, LEASED) is not None)
    @rule(nth=st.integers(0, 9), epoch=epochs)
    def release(self, nth: int, epoch: int | None) -> None:
        self._holder_write(nth, epoch, lambda j, n: j.release_lease(n, "shutdown", self.now))

    # Services and operators.

    @precondition(lambda self: self._nth(0, LEASED) is not None)
    @rule(nth=st.integers(0, 9), reason=st.sampled_from(["lease_timeout", "factory_down"]))
    def expire(self, nth: int, reason: str) -> None:
        job_id = self._nth(nth, LEASED)
        assert job_id is not None
        self._do(job_id, lambda j: j.expire_lease(reason, self.now))

    @precondition(lambda self: self._nth(0, WAITING_ON_SERVICES) is not None)
    @rule(nth=st.integers(0, 9), unblock=st.booleans())
    def make_ready(self, nth: int, unblock: bool) -> None:
        """The scheduler (time has come) or dependency propagation (deps are met)."""
        job_id = self._nth(nth, WAITING_ON_SERVICES)
        assert job_id is not None
        self._do(job_id, lambda j: j.unblock(self.now) if unblock else j.make_ready(self.now))

    @precondition(lambda self: self._nth(0, LEASED) is not None)
    @rule(nth=st.integers(0, 9))
    def cancel_leased(self, nth: int) -> None:
        """The holder learns of it on its next renewal (the operator rule cancels others)."""
        job_id = self._nth(nth, LEASED)
        assert job_id is not None
        holder = self.live[job_id].epoch
        self._do(job_id, lambda j: j.cancel("test", "operator", self.now))
        self._do(job_id, lambda j: j.renew_lease(holder, None, self.now))

    @rule(job=jobs, nth=st.none() | st.integers(0, 9), action=st.sampled_from(sorted(OPERATOR)))
    def operator(self, job: UUID, nth: int | None, action: str) -> None:
        """Rarer moves, in one rule so they do not crowd out the workers' rules; mostly
        on parked jobs (requeue), else on any job."""
        parked = None if nth is None else self._nth(nth, frozenset({JobState.DEAD_LETTER}))
        self._do(parked or job, lambda j: OPERATOR[action](j, self.now))

    # Anything, to any job, with any epoch: the refusals must hold everywhere.

    @rule(job=jobs, command=st.sampled_from(sorted(ANY_COMMAND)), epoch=st.integers(0, 8))
    def anything(self, job: UUID, command: str, epoch: int) -> None:
        self._do(job, lambda j: ANY_COMMAND[command](j, epoch, self.now))

    # ------------------------------------------------------------ invariants
    # Only the job the last rule touched can have changed; teardown checks them all.

    @invariant()
    def one_lease_consistent_with_the_state(self) -> None:
        if self.touched is not None:
            check_lease(self.live[self.touched])

    @invariant()
    def epochs_and_attempts_never_decrease(self) -> None:
        if self.touched is None:
            return
        job = self.live[self.touched]
        assert job.epoch >= self.high_epoch[job.id]
        assert job.attempt >= self.high_attempt[job.id]
        assert 0 <= job.attempt_base <= job.attempt
        self.high_epoch[job.id], self.high_attempt[job.id] = job.epoch, job.attempt

    @invariant()
    def terminal_states_absorb(self) -> None:
        if self.touched is None:
            return
        job = self.live[self.touched]
        if job.id in self.ended:
            assert job.state is self.ended[job.id]
        elif job.state in TERMINAL:
            self.ended[job.id] = job.state

    @invariant()
    def replay_and_restore_equal_live(self) -> None:
        if self.touched is not None:
            job = self.live[self.touched]
            check_replay(job, self.history[job.id])
            check_restore(job)

    def teardown(self) -> None:
        mapper = PydanticMapper(transcoder=JSONTextTranscoder())
        for job_id, job in self.live.items():
            check_lease(job)
            stored = [mapper.to_domain_event(mapper.to_stored_event(ev)) for ev in self.history[job_id]]
            check_replay(job, stored)


def check_lease(job: Job) -> None:
    leased = job.state in LEASED
    assert (job.lease is not None) == leased, f"{job.state} with lease {job.lease}"
    open_runs = [run for run in job.runs if run.outcome is None]
    assert len(open_runs) == (1 if leased else 0), "at most one live run, and only while leased"
    if job.lease is not None:
        assert job.lease.epoch == job.epoch
        assert job.runs[-1] == open_runs[0] and open_runs[0].epoch == job.lease.epoch


def check_replay(job: Job, events: list[DomainEvent]) -> None:
    """Replay from nothing: equal to live; every grant above every earlier epoch; a
    StaleWriteRejected never changes anything."""
    replayed: Any = None
    highest = 0
    for event in events:
        before = None if replayed is None else without_clock(replayed.to_snapshot())
        replayed = event.mutate(replayed)
        if isinstance(event, e.LeaseGranted):
            assert event.epoch > highest, "an epoch was granted twice"
        highest = max(highest, replayed.epoch)
        if isinstance(event, e.LeaseExpired):
            # The fencing epoch moves past the expired lease: its holder can never write again.
            assert replayed.epoch == event.new_epoch > event.epoch
        if isinstance(event, e.StaleWriteRejected):
            assert without_clock(replayed.to_snapshot()) == before
    assert replayed.version == job.version
    assert replayed.spec == job.spec
    assert replayed.to_snapshot() == job.to_snapshot()


def check_restore(job: Job) -> None:
    # The snapshot goes through JSON, as it does through the job view row.
    snapshot = JobSnapshot.model_validate_json(job.to_snapshot().model_dump_json())
    restored = Job.restore(job.id, job.version, job.spec, snapshot)
    assert (restored.id, restored.version, restored.spec) == (job.id, job.version, job.spec)
    assert restored.to_snapshot() == job.to_snapshot()


JobMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50)
TestJobMachine = JobMachine.TestCase
