"""The client's one choke point for failures: problem responses become the domain and
coordinator exceptions the server raised, transport failures become ``Unavailable``.

A problem body (``application/problem+json``) carries the refusal's ``code`` and its
fields flattened beside ``detail``; ``BUILDERS`` rebuilds the original exception from
them, keeping the server's wording as the message. A code this client does not know
(a newer server), a body that is not a problem, or fields that do not fit become an
``ApiError`` carrying the code, the status and every field.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

import httpx

from adapters.auth.tokens import Unauthenticated
from coordinator.errors import (
    Conflict,
    FactoryDown,
    Forbidden,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    TenantRequired,
    Unavailable,
)
from domain.errors import (
    DependencyCycle,
    DependencyFailed,
    DomainError,
    IdempotencyConflict,
    IllegalTransition,
    InvalidLease,
    LeaseNotExpired,
    NotDue,
    ProfileConflict,
    RequeueRefused,
    StaleEpoch,
    UnknownDependency,
    UnknownPhase,
)

PROBLEM_KEYS = frozenset({"type", "title", "status", "detail", "code"})
"""The problem envelope; every other key of the body is a field of the refusal."""
GATEWAY_STATUSES = frozenset({502, 503, 504})
"""The server (or a proxy in front of it) cannot answer now: ``Unavailable``."""


class ApiError(DomainError):
    """A refusal this client cannot map to a typed exception: the problem's ``code``,
    the HTTP ``status``, and the problem's other fields in ``fields``."""

    def __init__(self, code: str, status: int, message: str, **fields: Any):
        super().__init__(message, status=status, **fields)
        # ``code`` is a class attribute on every other DomainError; here it is the
        # server's, per instance (setattr: the base class declares it a ClassVar).
        setattr(self, "code", code)  # noqa: B010
        self.status = status


Builder = Callable[[Mapping[str, Any]], DomainError]


BUILDERS: dict[str, Builder] = {
    "stale-epoch": lambda f: StaleEpoch(
        job_id=UUID(str(f["job_id"])),
        presented=int(f["presented_epoch"]),
        current=int(f["current_epoch"]),
        state=str(f["state"]),
        command=str(f["command"]),
    ),
    "illegal-transition": lambda f: IllegalTransition(
        aggregate=str(f["aggregate"]),
        event=str(f["event"]),
        state=f.get("state"),
        allowed_from=list(f.get("allowed_from") or []),
        target=f.get("target"),
    ),
    "idempotency-conflict": lambda f: IdempotencyConflict(
        key=str(f["key"]), job_id=UUID(str(f["job_id"])), state=str(f["state"])
    ),
    "requeue-refused": lambda f: RequeueRefused(UUID(str(f["job_id"])), str(f["reason"])),
    "dependency-failed": lambda f: DependencyFailed(UUID(str(f["dependency_id"])), str(f["state"])),
    "unknown-dependency": lambda f: UnknownDependency([UUID(str(i)) for i in f["ids"]]),
    "dependency-cycle": lambda f: DependencyCycle([str(n) for n in f["cycle"]]),
    "unknown-phase": lambda f: UnknownPhase(
        UUID(str(f["job_id"])), str(f["phase"]), [str(p) for p in f.get("phases") or []]
    ),
    "invalid-lease": lambda f: InvalidLease(float(f["lease_seconds"])),
    "profile-conflict": lambda f: ProfileConflict(str(f["name"]), int(f["version"])),
    "lease-not-expired": lambda f: LeaseNotExpired(UUID(str(f["job_id"])), str(f["expires_at"])),
    "not-due": lambda f: NotDue(UUID(str(f["job_id"])), str(f["available_at"])),
    "not-found": lambda f: NotFound(str(f["kind"]), f["id"]),
    "forbidden": lambda f: Forbidden(str(f["action"]), str(f["needs"])),
    "tenant-required": lambda f: TenantRequired(str(f["action"])),
    "unauthenticated": lambda f: Unauthenticated(str(f.get("reason") or "not authenticated")),
    "factory-down": lambda f: FactoryDown(str(f["factory"])),
    "invalid-request": lambda f: InvalidRequest("request", list(f.get("errors") or [])),
    # The problem's ``detail`` is the whole message: the error's own ``detail`` field, which
    # shares the name, is its text after the constructor's prefix.
    "conflict": lambda f: Conflict(_unprefixed(f.get("detail"), "concurrent update, retry: ")),
    "unavailable": lambda f: Unavailable(_unprefixed(f.get("detail"), "event store unavailable: ")),
    "quota-exceeded": lambda f: QuotaExceeded(
        str(f["tenant"]), str(f["quota"]), int(f["limit"]), int(f["current"]), float(f["retry_after_seconds"])
    ),
}


def _unprefixed(text: Any, prefix: str) -> str:
    text = str(text or "")
    return text[len(prefix) :] if text.startswith(prefix) else text


def from_problem(status: int, body: Any) -> DomainError:
    """The exception a problem response stands for."""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return _not_a_problem(status, body)
    code: str = body["code"]
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    fields = {k: v for k, v in body.items() if k not in PROBLEM_KEYS}
    builder = BUILDERS.get(code)
    if builder is not None:
        try:
            error = builder({**fields, "detail": detail})
        except (KeyError, TypeError, ValueError):
            pass  # fields that do not fit this client's idea of the code: keep them all
        else:
            # The server's wording wins: it is what its logs and the job's history say.
            error.message = detail
            error.args = (detail,)
            return error
    return ApiError(code, status, detail, **fields)


def _not_a_problem(status: int, body: Any) -> DomainError:
    text = body if isinstance(body, str) else repr(body)
    text = " ".join(text.split())[:300] or "(empty body)"
    if status in GATEWAY_STATUSES:
        return Unavailable(f"HTTP {status} from the server or a proxy in front of it: {text}")
    return ApiError(f"http-{status}", status, f"HTTP {status} without a problem body: {text}")


def from_transport(exc: httpx.TransportError, url: str) -> Unavailable:
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting timed out",
            httpx.ReadTimeout: "no answer in time",
            httpx.WriteTimeout: "sending timed out",
            httpx.PoolTimeout: "no free connection in time",
        }.get(type(exc), "timed out")
    else:
        what = f"{type(exc).__name__}: {exc}".rstrip(": ")
    error = Unavailable(f"{url}: {what}")
    # Unavailable's own wording is about the event store; this is the way to the server.
    error.message = f"the Fleetlog server did not answer: {url}: {what}"
    error.args = (error.message,)
    return error


def not_sent(exc: httpx.TransportError) -> bool:
    """True when the request surely never reached the server (retrying it is safe
    whatever it does); any other failure may have happened after the server acted."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None without one."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
