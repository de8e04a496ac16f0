"""When the client sends a request again, and how long it waits first.

A failure is *transient* when the server could not act (it was unreachable, timed
out, overloaded, or answered 429/502/503/504). Whether a transient failure may be
retried depends on the request:

- **safe** requests (reads, PUT, heartbeats, renewals, submits carrying an
  idempotency key) are retried on every transient failure: doing them twice is the
  same as doing them once;
- **unsafe** requests (claims, fenced writes, completions, releases, cancels,
  requeues, submits without a key) are retried only when the request surely never
  reached the server (the connection could not be opened) or the server says it
  rolled back (503 ``conflict``). After a read timeout or a dropped connection the
  server may have acted, so the failure goes to the caller as ``Unavailable``: a
  claim whose answer was lost leaves leases nobody works on until they expire and
  the reaper requeues the jobs (each such expiry spends one attempt); a fenced write
  sent twice is refused the second time as ``stale-epoch``.

429 (a quota) is retried only for safe requests, and only when its ``Retry-After``
is within ``max_retry_after_seconds``: backpressure reaches the caller instead of
being slept through. Waits are exponential with full jitter, never shorter than the
server's ``Retry-After``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import RetryCallState, Retrying, stop_after_attempt, stop_after_delay, wait_random_exponential

from domain.errors import DomainError

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_INITIAL_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 5.0
DEFAULT_MAX_RETRY_AFTER = 30.0
DEFAULT_MAX_ELAPSED = 60.0

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: Annotated[int, Field(ge=1, le=100)] = DEFAULT_MAX_ATTEMPTS
    """Tries per call, the first included (1: never retry)."""
    initial_backoff_seconds: Annotated[float, Field(gt=0, le=60)] = DEFAULT_INITIAL_BACKOFF
    max_backoff_seconds: Annotated[float, Field(gt=0, le=600)] = DEFAULT_MAX_BACKOFF
    max_retry_after_seconds: Annotated[float, Field(ge=0, le=3600)] = DEFAULT_MAX_RETRY_AFTER
    """A ``Retry-After`` longer than this is not waited for: the error goes to the caller."""
    max_elapsed_seconds: Annotated[float, Field(gt=0, le=3600)] = DEFAULT_MAX_ELAPSED
    """No new attempt starts once this long has passed since the first."""

    @classmethod
    def never(cls) -> RetryPolicy:
        return cls(max_attempts=1)


@dataclass(eq=False)
class Transient(Exception):
    """A failure worth retrying if the request allows it (internal to the client)."""

    error: DomainError
    status: int | None
    """None: no answer came (a transport failure)."""
    sent: bool
    """The request may have reached the server."""
    retry_after: float | None = None


def may_retry(failure: BaseException, *, safe: bool, policy: RetryPolicy) -> bool:
    if not isinstance(failure, Transient):
        return False
    if failure.retry_after is not None and failure.retry_after > policy.max_retry_after_seconds:
        return False
    if safe:
        return True
    if failure.status == 429:
        return False
    return not failure.sent or failure.error.code == "conflict"


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_random_exponential(
        multiplier=policy.initial_backoff_seconds, max=policy.max_backoff_seconds
    )

    def wait(state: RetryCallState) -> float:
        delay: float = backoff(state)
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, Transient) and failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        return delay

    return wait


def call_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[], T],
    *,
    safe: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` until it returns, fails for good, or the policy gives up; a
    ``Transient`` that ends the loop is raised as the error it carries."""
    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_elapsed_seconds),
        wait=_wait(policy),
        retry=lambda state: (
            state.outcome is not None
            and state.outcome.failed
            and may_retry(state.outcome.exception() or Exception(), safe=safe, policy=policy)
        ),
        reraise=True,
        sleep=sleep,
    )
    try:
        return retrying(attempt)
    except Transient as failure:
        raise failure.error from failure.__cause__
