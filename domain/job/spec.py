"""What a submitter asks for: the job specification and its value objects.

Validation happens here, once, with messages a person can act on. Specs are normalised
(priority names become numbers, capabilities are sorted and de-duplicated, bare
dependency ids become ``Dependency`` records) so that equal intent hashes equally.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from domain.limits import Count, ProfileVersion

MAX_PAYLOAD_DEPTH = 32
MAX_CAPABILITIES = 64
MAX_DEPENDENCIES = 1000
MAX_PHASES = 32

PRIORITY_NAMES = {"critical": 0, "high": 10, "medium": 20, "low": 30}
"""Lower runs sooner. Integers 0-100 are accepted as they are."""

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,62}$")]
"""Tenants, queues, capabilities, phases, factories: lower-case slugs up to 63 chars."""

TenantName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


def _priority(value: Any) -> Any:
    if isinstance(value, str):
        if value.lower() in PRIORITY_NAMES:
            return PRIORITY_NAMES[value.lower()]
        if value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError(f"priority must be one of {', '.join(PRIORITY_NAMES)} or an integer 0-100")
    return value


Priority = Annotated[int, BeforeValidator(_priority), Field(ge=0, le=100)]


def _finite(value: Any) -> Any:
    """Refuse NaN and +/-Infinity anywhere in a JSON value: JSON cannot hold them (pydantic
    writes them as null), so the stored event would differ from the live aggregate."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity cannot be stored; use a finite number or null")
    if isinstance(value, dict):
        for item in value.values():
            _finite(item)
    elif isinstance(value, list):
        for item in value:
            _finite(item)
    return value


JsonObject = Annotated[dict[str, JsonValue], AfterValidator(_finite)]
"""A JSON object with finite numbers only (``allow_inf_nan`` does not reach JsonValue
when parsing JSON text, so the check is explicit)."""


class Frozen(BaseModel):
    # allow_inf_nan=False: a NaN or Infinity would be stored as null (see ``_finite``).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DependencyMode(StrEnum):
    HARD = "hard"
    SOFT = "soft"


class BackoffKind(StrEnum):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    CONSTANT = "constant"


class JobKind(StrEnum):
    LEAF = "leaf"
    COMPOSITE = "composite"


_DEPENDENCY_MODES = frozenset(m.value for m in DependencyMode)


class DependencySpec(Frozen):
    job_id: UUID
    mode: DependencyMode | None = None
    milestone: Name | None = None
    """For soft dependencies: the dependency's phase that releases this job
    (default: the dependency's last declared phase)."""


class Dependency(Frozen):
    """A resolved edge: this job waits for ``job_id`` to succeed (hard) or to reach
    ``milestone`` (soft; None means the dependency must succeed)."""

    job_id: UUID
    mode: DependencyMode
    milestone: str | None = None


class RetryPolicy(Frozen):
    max_attempts: int = Field(default=3, ge=1, le=1000)
    backoff: BackoffKind = BackoffKind.EXPONENTIAL
    base_seconds: float = Field(default=1.0, gt=0, le=86_400)
    max_seconds: float = Field(default=300.0, gt=0, le=7 * 86_400)
    jitter: float = Field(default=0.2, ge=0, le=1)
    """Fraction of the delay added or removed at random (0.2 = +/-20%)."""
    retry_on: tuple[Name, ...] | None = None
    """Error kinds that may retry; None means any kind the worker marks retryable."""

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.max_seconds < self.base_seconds:
            raise ValueError("retry.max_seconds must be >= retry.base_seconds")
        return self


class Budget(Frozen):
    usd: float | None = Field(default=None, ge=0)
    tokens: Count | None = None
    wall_seconds: float | None = Field(default=None, gt=0)


class ProfileRef(Frozen):
    name: Name
    version: ProfileVersion


def _depth(value: Any) -> int:
    """Containers nested inside each other: ``{"a": 1}`` is 1, ``{"a": [1]}`` is 2."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class JobSpec(Frozen):
    """A validated, normalised job submission."""

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    queue: Name = "default"
    kind: JobKind = JobKind.LEAF
    priority: Priority = PRIORITY_NAMES["medium"]
    capabilities: tuple[Name, ...] = Field(default=(), max_length=MAX_CAPABILITIES)
    deps: tuple[Dependency, ...] = Field(default=(), max_length=MAX_DEPENDENCIES)
    run_at: AwareDatetime | None = None
    payload: JsonObject = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    lease_seconds: float = Field(default=60.0, gt=0, le=86_400)
    budget: Budget | None = None
    parent_id: UUID | None = None
    phases: tuple[Name, ...] = Field(default=(), max_length=MAX_PHASES)
    profile: ProfileRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_deps(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        mode = data.pop("deps_mode", None)
        if mode is None:
            mode = DependencyMode.HARD
        # Check the type first: an unhashable value (a list) would make ``in`` raise a
        # TypeError, which pydantic does not turn into a ValidationError.
        if not isinstance(mode, str) or mode not in _DEPENDENCY_MODES:
            raise ValueError("deps_mode must be 'hard' or 'soft'")
        if "deps" not in data:
            return data
        deps = data["deps"]
        if not isinstance(deps, list | tuple):
            raise ValueError("deps must be a list of job ids or {job_id, mode, milestone} objects")
        data["deps"] = tuple(_dependency(d, DependencyMode(mode)) for d in deps)
        return data

    @field_validator("capabilities", "phases", mode="after")
    @classmethod
    def _sorted_unique_caps(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        if info.field_name == "phases":
            if len(set(value)) != len(value):
                raise ValueError("phases must be unique")
            return value
        return tuple(sorted(set(value)))

    @field_validator("deps", mode="after")
    @classmethod
    def _unique_deps(cls, value: tuple[Dependency, ...]) -> tuple[Dependency, ...]:
        ids = [d.job_id for d in value]
        if len(set(ids)) != len(ids):
            raise ValueError("deps lists the same job more than once")
        # A set of edges: ordered by id so that equal intent hashes equally.
        return tuple(sorted(value, key=lambda d: d.job_id))

    @field_validator("run_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # One instant, one representation (and no sub-minute offsets JSON cannot keep).
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T01:00+04:00 is before year 1 in UTC
            raise ValueError("run_at is outside the range of representable times") from None

    @field_validator("payload", mode="after")
    @classmethod
    def _shallow_enough(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value) > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"payload is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        return value

    @cached_property
    def json_text(self) -> str:
        """The spec as JSON, computed once: specs never change after submit."""
        return self.model_dump_json()

    def content_hash(self) -> str:
        """Hash of everything but the idempotency key: equal intent, equal hash."""
        return self._content_hash

    @cached_property
    def _content_hash(self) -> str:
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def first_available_at(self, now: datetime) -> datetime:
        return self.run_at if self.run_at is not None and self.run_at > now else now


def _dependency(value: Any, default_mode: DependencyMode) -> Dependency:
    if isinstance(value, Dependency):
        return value
    if isinstance(value, str | UUID):
        return Dependency(job_id=UUID(str(value)), mode=default_mode)
    spec = DependencySpec.model_validate(value)
    return Dependency(job_id=spec.job_id, mode=spec.mode or default_mode, milestone=spec.milestone)


class ErrorInfo(Frozen):
    """What a worker reports when an attempt fails."""

    kind: Name = "error"
    message: Annotated[str, StringConstraints(max_length=10_000)] = ""
    retryable: bool = True


class RunInsights(Frozen):
    """Usage a worker reports for one run (attempt)."""

    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    tokens_in: Count = 0
    tokens_out: Count = 0
    tokens_cached: Count = 0
    cost_usd: float = Field(default=0.0, ge=0)
    turns: Count = 0
    tool_calls: Count = 0
    files_changed: Count = 0
    lines_added: Count = 0
    lines_deleted: Count = 0


class Artifact(Frozen):
    """A pointer to something a run produced; logs live elsewhere, never inline."""

    uri: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: Count
    kind: Name = "file"


FailureReason = Literal["non_retryable", "attempts_exhausted", "budget_exhausted", "dependency_failed"]
