"""Every error the API returns, as ``application/problem+json`` (RFC 9457).

Coordinator and domain refusals carry a stable ``code``; ``STATUS`` maps each to its
HTTP status in one table, and the problem's ``type`` is ``/problems/<code>`` (a page
this API serves, describing the problem). Anything unexpected is logged with a
reference and answered 500 without internals; the test suite's fuzzer asserts none
ever happens.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

from coordinator.errors import validation_errors
from domain.errors import DomainError

log = logging.getLogger("fleetlog.http")

PROBLEM_JSON = "application/problem+json"

STATUS: dict[str, int] = {
    "unauthenticated": 401,
    "forbidden": 403,
    "tenant-required": 403,
    "not-found": 404,
    "route-not-found": 404,
    "method-not-allowed": 405,
    "not-acceptable": 406,
    "stale-epoch": 409,
    "illegal-transition": 409,
    "idempotency-conflict": 409,
    "requeue-refused": 409,
    "dependency-failed": 409,
    "factory-down": 409,
    "profile-conflict": 409,
    "lease-not-expired": 409,
    "not-due": 409,
    "malformed-json": 400,
    "payload-too-large": 413,
    "unsupported-media-type": 415,
    "invalid-request": 422,
    "unknown-dependency": 422,
    "dependency-cycle": 422,
    "unknown-phase": 422,
    "invalid-lease": 422,
    "quota-exceeded": 429,
    "conflict": 503,
    "unavailable": 503,
    "analytics-off": 503,
    "analytics-refused": 502,
    "internal-error": 500,
}
"""Status per problem code. ``conflict`` is a concurrent update the server already
retried; like ``unavailable`` it is worth retrying later, so both are 503."""

TITLES: dict[str, str] = {
    "unauthenticated": "Missing or invalid credentials",
    "forbidden": "The token lacks the role this needs",
    "tenant-required": "This needs a tenant-bound token",
    "not-found": "No such resource",
    "route-not-found": "No such route",
    "method-not-allowed": "Method not allowed on this route",
    "stale-epoch": "Stale lease epoch: this worker no longer holds the job",
    "illegal-transition": "The job cannot make this transition in its current state",
    "idempotency-conflict": "The idempotency key belongs to a job with other content",
    "requeue-refused": "The job cannot be requeued",
    "dependency-failed": "A dependency can never succeed",
    "factory-down": "The factory is marked down",
    "profile-conflict": "A profile version with other content exists",
    "malformed-json": "The body is not valid JSON",
    "payload-too-large": "The body is larger than the server accepts",
    "unsupported-media-type": "The body must be application/json",
    "invalid-request": "The request failed validation",
    "analytics-off": "This server does not serve analytics",
    "analytics-refused": "ClickHouse refused a statement of Fleetlog's",
    "unknown-dependency": "A dependency does not exist",
    "dependency-cycle": "The dependencies form a cycle",
    "unknown-phase": "The job declares no such phase",
    "invalid-lease": "The lease length is not allowed",
    "quota-exceeded": "The tenant's quota refuses more work now",
    "conflict": "Concurrent updates kept colliding; retry",
    "unavailable": "The store is unavailable; retry",
    "internal-error": "Internal error",
}

RETRY_AFTER_SECONDS: dict[str, int] = {"conflict": 1, "unavailable": 2}


def problem(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    errors: list[dict[str, Any]] | None = None,
    fields: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    status = status or STATUS.get(code, 409)
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": TITLES.get(code) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    for key, value in (fields or {}).items():
        if key not in body and key not in {"message", "errors"}:
            body[key] = value
    out = dict(headers or {})
    if code in RETRY_AFTER_SECONDS:
        out.setdefault("Retry-After", str(RETRY_AFTER_SECONDS[code]))
    if status == 401:
        out.setdefault("WWW-Authenticate", 'Bearer realm="fleetlog"')
    return JSONResponse(body, status_code=status, headers=out, media_type=PROBLEM_JSON)


def from_domain(exc: DomainError) -> JSONResponse:
    fields = exc.to_dict()
    fields.pop("code", None)
    errors = fields.pop("errors", None)
    headers: dict[str, str] = {}
    if exc.code == "quota-exceeded":
        wait = float(exc.fields.get("retry_after_seconds") or 1.0)
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return problem(exc.code, exc.message, errors=errors, fields=fields, headers=headers)


def from_validation(exc: ValidationError, where: str) -> JSONResponse:
    errors = validation_errors(exc)
    for error in errors:
        error["loc"] = f"{where}.{error['loc']}" if error["loc"] != "(body)" else where
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:10])
    return problem("invalid-request", f"invalid {where}: {detail}", errors=errors)


def internal(exc: BaseException) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error (ref %s)", ref, exc_info=exc)
    return problem(
        "internal-error",
        f"the server failed unexpectedly (ref {ref}); this is a bug in Fleetlog, please report it "
        "with the reference: the server log has the details",
        fields={"ref": ref},
    )
