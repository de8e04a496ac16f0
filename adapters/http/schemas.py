"""The wire format: request bodies and query strings the API validates, and the
response envelopes it adds around the coordinator's views.

These models are the single source of truth: the routes validate with them and
``openapi.py`` publishes their JSON Schemas, so the document cannot drift from the code.
Every model forbids unknown fields: a typo is a 422 that names it, never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from adapters.submit_schema import SubmitArguments
from coordinator.queries import MAX_PAGE
from coordinator.reporting import MAX_COMPLETIONS, Completion
from coordinator.views import ClaimedJob, ItemResult, SubmitResult
from domain.job import JobSpec
from domain.job.spec import MAX_CAPABILITIES, ErrorInfo, Name, RunInsights

MAX_BATCH = 1000
MAX_CLAIM_HTTP = 100
MAX_WAIT_SECONDS = 30.0
MAX_REASON = 1000
STREAM_HEADER = "Fleetlog-Stream"
"""The response header naming a refilled claim stream."""

LeaseSeconds = Annotated[float, Field(gt=0, le=86_400)]
Epoch = Annotated[int, Field(ge=0, le=2**62)]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON)]


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# ------------------------------------------------------------------ submitters


class BatchSubmit(Body):
    jobs: Annotated[list[JobSpec], Field(min_length=1, max_length=MAX_BATCH)]
    """Up to 1,000 job specs, submitted in one transaction; results come back in order."""


class PublishedBatch(Body):
    """``BatchSubmit`` as published: each job as a submitter may write it."""

    jobs: Annotated[list[SubmitArguments], Field(min_length=1, max_length=MAX_BATCH)]


class BatchResult(Body):
    results: list[ItemResult]


class SubmitResponse(SubmitResult):
    """``outcome``: created (201), existing (200, an identical resubmit: same id) or
    superseded (200, the queued job with this key was replaced by this content)."""


class CancelBody(Body):
    reason: Reason = "cancelled"


# --------------------------------------------------------------------- workers


class ClaimBody(Body):
    factory_id: Name
    capabilities: Annotated[tuple[Name, ...], Field(max_length=MAX_CAPABILITIES)] | None = None
    """What this claim can run; omitted: the factory's registered capabilities."""
    max_jobs: Annotated[int, Field(ge=1, le=MAX_CLAIM_HTTP)] = 1
    lease_seconds: LeaseSeconds | None = None
    """Omitted: each job's own lease length."""
    wait_seconds: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)] = 0.0
    """Long-poll: with no work ready, wait up to this long and answer as soon as some is."""
    queues: Annotated[tuple[Name, ...], Field(min_length=1, max_length=MAX_CAPABILITIES)] | None = None
    """Omitted: every queue."""
    start: bool = False
    """The worker starts the jobs at once: record their start in the claim itself."""
    refill: bool = False
    """Claim streams only: the worker adds room as its handler slots free (``POST
    /v1/claim/room`` with the stream id the response's ``Fleetlog-Stream`` header gives),
    so the stream stays open after ``max_jobs`` jobs; it ends at ``wait_seconds``, or
    once it has had no room for a moment (``REFILL_IDLE_SECONDS``)."""


StreamId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class RoomBody(Body):
    stream: StreamId
    """The ``Fleetlog-Stream`` header of a claim stream opened with ``refill``."""
    jobs: Annotated[int, Field(ge=1, le=MAX_CLAIM_HTTP)]
    """Handler slots freed since the stream was opened or last given room."""


class RoomResult(Body):
    stream: StreamId
    room: int | None
    """Jobs the stream may now be given before it needs more room (None: forwarded)."""
    forwarded: bool = False
    """The stream is another server process's: the room was forwarded to it (202), and
    is given to the stream if it is still open there."""


class ClaimResponse(Body):
    jobs: list[ClaimedJob]


class RenewBody(Body):
    epoch: Epoch
    lease_seconds: LeaseSeconds | None = None


class ReleaseBody(Body):
    epoch: Epoch
    reason: Reason = "released by worker"


class PatchJob(Body):
    """A fenced write by the lease holder. Applied in this order: ``running`` (start),
    ``phase``, ``checkpoint``, ``insights``, then ``succeeded``/``failed`` with
    ``result``/``error``. A worker may report ``succeeded`` or ``failed`` straight from
    ``assigned``."""

    epoch: Epoch
    state: Literal["running", "succeeded", "failed"] | None = None
    phase: Name | None = None
    checkpoint: JsonValue = None
    """Omitted: unchanged. Present (even null): the new checkpoint."""
    result: JsonValue = None
    error: ErrorInfo | None = None
    insights: RunInsights | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PatchJob:
        if self.state == "failed" and self.error is None:
            raise ValueError("state 'failed' needs an error {kind, message, retryable}")
        if self.error is not None and self.state != "failed":
            raise ValueError("an error is reported only with state 'failed'")
        if "result" in self.model_fields_set and self.state != "succeeded":
            raise ValueError("a result is reported only with state 'succeeded'")
        if not (self.model_fields_set - {"epoch"}):
            raise ValueError("nothing to write: give state, phase, checkpoint or insights")
        return self

    @property
    def has_checkpoint(self) -> bool:
        return "checkpoint" in self.model_fields_set


# ----------------------------------------------------------------------- reads


class ListQuery(Body):
    state: Annotated[list[str], Field(max_length=16)] | None = None
    """One or more states (repeat the parameter, or separate with commas)."""
    queue: Name | None = None
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    parent_id: UUID | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class StateQuery(Body):
    version: Annotated[int, Field(ge=1, le=2**62)]


# ---------------------------------------------------------------------- health


class Health(Body):
    status: Literal["ok"]


class Readiness(Body):
    status: Literal["ready"]
    store: str


# --------------------------------------------------------------------- problems


class FieldError(BaseModel):
    loc: str
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details. ``type`` is a URI reference (``/problems/<code>``,
    served by the API); ``code`` is the same name, for programs."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


class CompletionBatch(Body):
    completions: Annotated[list[Completion], Field(min_length=1, max_length=MAX_COMPLETIONS)]
