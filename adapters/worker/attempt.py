"""Running one attempt: the handler boundary. A return value becomes a success, a
``NonRetryable`` a final failure, any other exception a retryable failure whose kind
is the exception's class name; a lost lease becomes nothing at all."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import JsonValue, ValidationError

from adapters.worker.context import Handler, JobContext, LeaseLost, NonRetryable, Stop, error_kind
from adapters.worker.port import FleetPort
from adapters.worker.registry import ANY_QUEUE
from coordinator.reporting import Completion
from domain.errors import StaleEpoch
from domain.job.spec import ErrorInfo

log = logging.getLogger("fleetlog.worker")

MAX_MESSAGE = 10_000
"""ErrorInfo.message's limit."""


def run_attempt(port: FleetPort, handlers: Mapping[str, Handler], ctx: JobContext) -> Completion | None:
    """Run the job's handler (the claim already recorded its start); the outcome to
    report, or None when the job is no longer ours (lost, cancelled or released:
    ``ctx.stop_reason`` says which)."""
    if ctx.cancelled.is_set():
        return None  # released (shutdown) before a handler thread picked it up
    handler = handlers.get(ctx.job.queue) or handlers.get(ANY_QUEUE)
    try:
        if handler is None:
            raise NonRetryable("no_handler", f"this worker has no handler for queue {ctx.job.queue}")
        result = handler(ctx.job, ctx)
    except LeaseLost:
        return None
    except StaleEpoch:
        ctx.halt(Stop.LOST)
        return None
    except NonRetryable as exc:
        return failed(ctx, exc.kind, exc.message, retryable=False)
    except Exception as exc:  # the handler boundary: any error fails the attempt, retryably
        if ctx.stop_reason is None:
            log.exception("job %s (queue %s) failed", ctx.job_id, ctx.job.queue)
        return failed(ctx, error_kind(type(exc).__name__), str(exc) or repr(exc), retryable=True)
    return succeeded(ctx, result)


def succeeded(ctx: JobContext, result: JsonValue) -> Completion:
    try:
        return Completion(job_id=ctx.job_id, epoch=ctx.epoch, outcome="succeeded", result=result)
    except ValidationError as exc:
        return failed(
            ctx, "invalid_result", f"the handler returned a non-JSON result: {exc}", retryable=False
        )


def failed(ctx: JobContext, kind: str, message: str, *, retryable: bool) -> Completion:
    error = ErrorInfo(kind=kind, message=message[:MAX_MESSAGE], retryable=retryable)
    return Completion(job_id=ctx.job_id, epoch=ctx.epoch, outcome="failed", error=error)
