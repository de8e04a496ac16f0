"""``WorkerConfig``: validated, with named defaults (River's shape)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coordinator.reporting import MAX_COMPLETIONS
from domain.job.spec import MAX_CAPABILITIES, Name

DEFAULT_CONCURRENCY = 4
DEFAULT_RENEW_FRACTION = 1 / 3
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
DEFAULT_HEARTBEAT_JITTER = 0.2
DEFAULT_COMPLETION_FLUSH_MS = 50.0
DEFAULT_COMPLETION_BATCH_MAX = 100
DEFAULT_GRACE_SECONDS = 10.0
DEFAULT_IDLE_POLL_SECONDS = 0.5
DEFAULT_CLAIM_COOLDOWN_SECONDS = 0.01

Seconds = Annotated[float, Field(gt=0, le=86_400)]


class WorkerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    factory_id: Name
    """The factory (worker host) this worker claims and heartbeats as."""
    capabilities: tuple[Name, ...] = Field(default=(), max_length=MAX_CAPABILITIES)
    concurrency: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_CONCURRENCY
    """Jobs run at once (handler seats). The worker runs one handler thread more, so that a
    thread reads the claims while every seat is busy (``turns.py``)."""
    prefetch: Annotated[int, Field(ge=0, le=10_000)] = 0
    """Leases held beyond the handler threads, waiting in memory for a free thread: bigger
    claim batches for floods of short jobs. 0 (the default) suits long jobs: nothing is
    held that could run elsewhere. With prefetch the claim cannot know which jobs start
    at once, so none records a start; jobs show ``assigned`` until they report."""
    queues: tuple[Name, ...] | None = None
    """Claim only these queues (each needs a handler); None: the handlers' queues."""
    lease_seconds: Seconds | None = None
    """Lease length asked for on claim and renewal; None: each job's own."""
    renew_fraction: Annotated[float, Field(gt=0, lt=1)] = DEFAULT_RENEW_FRACTION
    """Renew a lease after this fraction of its length has passed."""
    heartbeat_interval: Seconds = DEFAULT_HEARTBEAT_INTERVAL
    """The longest wait between two heartbeats."""
    heartbeat_jitter: Annotated[float, Field(ge=0, lt=1)] = DEFAULT_HEARTBEAT_JITTER
    """Each wait between heartbeats is the interval shortened by a random fraction of it up
    to this, never lengthened (so it stays as far inside the timeout as the interval is):
    workers started together spread their heartbeats instead of sending them in step for
    ever. 0: every wait is the interval."""
    heartbeat_timeout: Seconds | None = DEFAULT_HEARTBEAT_TIMEOUT
    """Silence after which the reaper declares the factory down; None: never."""
    completion_flush_ms: Annotated[float, Field(ge=0, le=10_000)] = DEFAULT_COMPLETION_FLUSH_MS
    """The shortest spacing of two completion batches (from the previous batch's answer):
    an outcome after a quiet spell is sent at once, the ones that follow sooner gather
    into one batch, one transaction. 50 ms is the tick of River's batch completer; under
    load it keeps completions from crowding submits and claims out of the events-table
    lock (bench/RESULTS.md)."""
    completion_batch_max: Annotated[int, Field(ge=1, le=MAX_COMPLETIONS)] = DEFAULT_COMPLETION_BATCH_MAX
    grace_seconds: Annotated[float, Field(ge=0, le=86_400)] = DEFAULT_GRACE_SECONDS
    """On stop: how long in-flight handlers may finish before their jobs are released."""
    idle_poll_seconds: Annotated[float, Field(gt=0, le=60)] = DEFAULT_IDLE_POLL_SECONDS
    """Longest idle wait before claiming again (run_at and retry times send no
    notification); it also bounds how long a stop waits for the claim loop."""
    claim_cooldown_seconds: Annotated[float, Field(ge=0, le=10)] = DEFAULT_CLAIM_COOLDOWN_SECONDS
    """Pause after an empty claim, so a burst of unrelated notifications is not a
    burst of empty claims."""

    @model_validator(mode="after")
    def _heartbeat_inside_timeout(self) -> WorkerConfig:
        if self.heartbeat_timeout is not None and self.heartbeat_interval >= self.heartbeat_timeout:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval}s) must be shorter than "
                f"heartbeat_timeout ({self.heartbeat_timeout}s), or the factory is declared down "
                "between two heartbeats"
            )
        return self
