"""Job states, and which service or actor moves a job out of each one."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    BLOCKED = "blocked"
    """Waiting for dependencies. Left by dependency propagation (on the dependency's
    success, milestone phase, dead letter or cancel), or by cancel."""
    SCHEDULED = "scheduled"
    """Waiting for ``run_at``. Left by the scheduler (or lazily by a claim) when due."""
    QUEUED = "queued"
    """Claimable. Left by a claim, cancel, supersede, or the reaper (dead letter)."""
    ASSIGNED = "assigned"
    """Leased to a factory. Left by the worker's writes, its release, or the reaper."""
    RUNNING = "running"
    """The worker reported start or a phase. Left like ``assigned``."""
    SUCCEEDED = "succeeded"
    """Terminal."""
    FAILED = "failed"
    """An attempt failed and will retry at ``available_at``. Left by the scheduler."""
    DEAD_LETTER = "dead_letter"
    """Parked: an operator may requeue or cancel it."""
    CANCELLED = "cancelled"
    """Terminal."""
    SUPERSEDED = "superseded"
    """Terminal: replaced by a resubmission with the same idempotency key."""


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.CANCELLED, JobState.SUPERSEDED})
LEASED = frozenset({JobState.ASSIGNED, JobState.RUNNING})
WAITING = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.FAILED})
"""States with a row in the queue view (claimable now or once ``available_at`` passes)."""
SUPERSEDABLE = frozenset({JobState.QUEUED, JobState.BLOCKED, JobState.SCHEDULED})
CANCELLABLE = frozenset(JobState) - TERMINAL


LEAVING: dict[JobState, str] = {
    JobState.BLOCKED: "dependency propagation (a dependency succeeds, reaches its milestone, "
    "dead-letters or is cancelled), or a cancel",
    JobState.SCHEDULED: "the scheduler when run_at arrives (or a claim, on the way), or a cancel/supersede",
    JobState.QUEUED: "a claim, a cancel or supersede, or the reaper (dead letter after the last attempt)",
    JobState.ASSIGNED: "the holder's writes (start, phase, succeed, fail, release) or the reaper",
    JobState.RUNNING: "the holder's writes (succeed, fail, release) or the reaper",
    JobState.SUCCEEDED: "nothing: terminal",
    JobState.FAILED: "the scheduler when the retry time arrives (or a claim, on the way), or a cancel",
    JobState.DEAD_LETTER: "an operator: requeue or cancel",
    JobState.CANCELLED: "nothing: terminal",
    JobState.SUPERSEDED: "nothing: terminal",
}
"""Which service or actor moves a job out of each state (River's convention)."""
