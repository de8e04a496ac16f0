"""A job's state without its spec: what the job view row stores as the hot-path snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import JsonValue

from domain.job.spec import Dependency, ErrorInfo, Frozen
from domain.job.state_values import Lease, Run
from domain.job.states import JobState


class JobSnapshot(Frozen):
    tenant: str
    content_hash: str | None
    deps: tuple[Dependency, ...]
    state: JobState
    epoch: int
    attempt: int
    attempt_base: int
    lease: Lease | None
    phase: str | None
    checkpoint: JsonValue
    result: JsonValue
    error: ErrorInfo | None
    available_at: datetime | None
    not_before: datetime | None
    runs: tuple[Run, ...]
    superseded_by: UUID | None
    supersedes: UUID | None
    cancelled_epoch: int | None
    reason: str | None
    last_refusal: tuple[int, str] | None = None
    created_on: datetime
    modified_on: datetime

    def as_json(self) -> Any:
        return self.model_dump(mode="json")
