"""The Job aggregate: spec, states, events, transition table, commands."""

from __future__ import annotations

from domain.job.aggregate import Job, RenewOutcome
from domain.job.snapshot import JobSnapshot
from domain.job.spec import JobSpec
from domain.job.states import JobState
from domain.job.table import JOB_TRANSITIONS

__all__ = ["JOB_TRANSITIONS", "Job", "JobSnapshot", "JobSpec", "JobState", "RenewOutcome"]
