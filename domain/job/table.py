"""The job's transition table: which event may happen in which state, and where it leads."""

from __future__ import annotations

from domain.job import events as e
from domain.job.states import CANCELLABLE, LEASED, SUPERSEDABLE, JobState
from domain.transitions import INITIAL, Transition, TransitionTable

S = JobState
_ = Transition.of
NOT_TERMINAL_OR_PARKED = frozenset(CANCELLABLE) - {S.DEAD_LETTER}

JOB_TRANSITIONS: TransitionTable[JobState] = TransitionTable(
    "Job",
    {
        e.JobSubmitted: _([INITIAL], [S.BLOCKED, S.SCHEDULED, S.QUEUED]),
        e.JobSuperseded: _(SUPERSEDABLE, [S.SUPERSEDED]),
        e.DependencyReplaced: _(NOT_TERMINAL_OR_PARKED),
        e.JobBlocked: _([S.QUEUED, S.SCHEDULED, S.FAILED], [S.BLOCKED]),
        e.JobScheduled: _([S.BLOCKED], [S.SCHEDULED]),
        e.JobReady: _([S.BLOCKED, S.SCHEDULED, S.FAILED], [S.QUEUED]),
        e.LeaseGranted: _([S.QUEUED], [S.ASSIGNED]),
        e.LeaseRenewed: _(LEASED),
        e.LeaseReleased: _(LEASED, [S.QUEUED]),
        e.LeaseExpired: _(LEASED, [S.QUEUED]),
        e.JobStarted: _([S.ASSIGNED], [S.RUNNING]),
        e.PhaseReported: _(LEASED, [S.RUNNING]),
        e.Checkpointed: _(LEASED),
        e.InsightsReported: _(LEASED),
        e.ArtifactRecorded: _(LEASED),
        e.JobSucceeded: _(LEASED, [S.SUCCEEDED]),
        e.AttemptFailed: _(LEASED, [S.FAILED]),
        e.JobDeadLettered: _([S.FAILED, S.QUEUED, S.BLOCKED], [S.DEAD_LETTER]),
        e.JobCancelled: _(CANCELLABLE, [S.CANCELLED]),
        e.JobRequeued: _([S.DEAD_LETTER], [S.QUEUED]),
        e.StaleWriteRejected: _(list(JobState)),
    },
)
