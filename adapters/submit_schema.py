"""``SubmitArguments``: a job spec as a submitter may write it, for published schemas
(the HTTP API's OpenAPI document and MCP's submit tool).

``JobSpec``'s own schema shows the normalised form (numeric priority, resolved
dependency records); its validator also accepts priority names, bare dependency ids
and ``deps_mode``, so this schema says so. Every other field is inherited, so a field
added to ``JobSpec`` appears here without a change. Only the schema is used: requests
are validated by ``JobSpec`` itself.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from domain.job import JobSpec
from domain.job.spec import MAX_DEPENDENCIES, DependencyMode, DependencySpec

PriorityName = Literal["critical", "high", "medium", "low"]
"""The names ``JobSpec`` accepts for priorities (``domain.job.spec.PRIORITY_NAMES``)."""


class SubmitArguments(JobSpec):
    """A job spec as a submitter may write it.

    ``JobSpec``'s own schema shows the normalised form (numeric priority, resolved
    dependency records); its validator also accepts priority names, bare dependency ids
    and ``deps_mode``, so the tool's schema says so. Every other field is inherited, so a
    field added to ``JobSpec`` appears in the tool without a change here. Only the schema
    is used: ``Fleet.submit`` validates the arguments as it does for HTTP and the CLI.
    """

    # Widened on purpose (schema only), hence the ignores: the validator narrows them.
    priority: Annotated[int, Field(ge=0, le=100)] | PriorityName = Field(  # type: ignore[assignment]
        default=20, description="critical/high/medium/low (0/10/20/30) or 0-100; lower runs sooner"
    )
    deps: tuple[UUID | DependencySpec, ...] = Field(  # type: ignore[assignment]
        default=(),
        max_length=MAX_DEPENDENCIES,
        description="job ids (in deps_mode), or {job_id, mode, milestone} objects",
    )
    deps_mode: DependencyMode = Field(
        default=DependencyMode.HARD,
        description="the mode of dependencies given as bare ids: hard (wait for success) or soft "
        "(wait for the dependency's milestone phase, by default its last declared phase)",
    )
