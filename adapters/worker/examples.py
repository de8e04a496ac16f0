"""Example handlers (registry ``HANDLERS``, keyed by queue name):

- ``noop``: returns None.
- ``sleep``: sleeps ``payload.seconds`` in steps of ``payload.step`` (default 0.1 s),
  checkpointing ``{"done": i}`` after each step and resuming from ``job.checkpoint``;
  reports the job's declared phases as it progresses; stops early when cancelled.
- ``fail``: raises ``RuntimeError`` (retryable) or ``NonRetryable(payload.kind)`` when
  ``payload.retryable`` is false; from attempt ``payload.until_attempt`` on it succeeds.
"""

from __future__ import annotations

import math

from pydantic import JsonValue

from adapters.worker.context import Handler, JobContext, NonRetryable
from coordinator.views import JobView


def _number(payload: dict[str, JsonValue], key: str, default: float) -> float:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NonRetryable("bad_payload", f"payload.{key} must be a number, got {value!r}")
    return float(value)


def noop(job: JobView, ctx: JobContext) -> JsonValue:
    return None


def resume_point(checkpoint: JsonValue) -> int:
    if isinstance(checkpoint, dict):
        done = checkpoint.get("done")
        if isinstance(done, int) and not isinstance(done, bool) and done >= 0:
            return done
    return 0


def phase_at(phases: tuple[str, ...], done: int, total: int) -> str:
    return phases[min(len(phases) - 1, done * len(phases) // total)]


def sleep(job: JobView, ctx: JobContext) -> JsonValue:
    seconds = _number(job.payload, "seconds", 1.0)
    step = _number(job.payload, "step", 0.1)
    if step <= 0:
        raise NonRetryable("bad_payload", "payload.step must be positive")
    total = max(1, math.ceil(seconds / step))
    start = done = min(resume_point(job.checkpoint), total)
    phase = phase_at(job.phases, done, total) if job.phases else None
    if phase is not None:
        ctx.phase(phase)
    while done < total:
        if ctx.cancelled.wait(step):
            return None  # cancelled or lost: the runtime reports nothing
        done += 1
        ctx.checkpoint({"done": done})
        if job.phases and phase_at(job.phases, done, total) != phase:
            phase = phase_at(job.phases, done, total)
            ctx.phase(phase)
    return {"slept_seconds": seconds, "steps": total, "resumed_from": start}


def fail(job: JobView, ctx: JobContext) -> JsonValue:
    payload = job.payload
    until = payload.get("until_attempt")
    if isinstance(until, int) and job.attempts >= until:
        return {"succeeded_on_attempt": job.attempts}
    message = str(payload.get("message", "failing on purpose"))
    if payload.get("retryable", True):
        raise RuntimeError(message)
    raise NonRetryable(str(payload.get("kind", "example_failure")), message)


HANDLERS: dict[str, Handler] = {"noop": noop, "sleep": sleep, "fail": fail}
