"""The MCP tools, declared once as data: name, description, input and output schemas,
and the ``Fleet`` call each one makes.

Inputs are validated by the same code as HTTP and the CLI: ``submit`` hands its
arguments to ``Fleet.submit`` (``JobSpec`` validates them and refuses with
``invalid-request``), the other tools parse theirs with the argument models below and
refuse the same way. Results are the coordinator's views as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from uuid import UUID

from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.submit_schema import SubmitArguments
from coordinator.errors import InvalidRequest, validation_errors
from coordinator.fleet import Fleet
from coordinator.identity import Identity
from coordinator.queries import MAX_PAGE
from coordinator.views import HistoryEntry, JobPage, JobView, SubmitResult
from domain.job import JobState
from domain.job.spec import Name

MAX_REASON = 1000


class Arguments(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class JobRef(Arguments):
    job_id: UUID = Field(description="the job's id, as submit or list returned it")


class CancelArguments(JobRef):
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON)] = "cancelled"


class ListArguments(Arguments):
    states: Annotated[list[JobState], Field(max_length=len(JobState))] | None = Field(
        default=None, description="only jobs in these states (omitted: every state)"
    )
    queue: Name | None = None
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    parent_id: UUID | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100
    cursor: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="next_cursor from the previous page"
    )


class History(BaseModel):
    """A job's events, oldest first (tool results are JSON objects, so the list is wrapped)."""

    events: list[HistoryEntry]


A = TypeVar("A", bound=BaseModel)


def parse(model: type[A], tool: str, arguments: Mapping[str, Any]) -> A:
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        raise InvalidRequest(f"{tool} arguments", validation_errors(exc)) from None


def _submit(fleet: Fleet, identity: Identity, arguments: Mapping[str, Any]) -> BaseModel:
    return fleet.submit(identity, arguments)


def _get(fleet: Fleet, identity: Identity, arguments: Mapping[str, Any]) -> BaseModel:
    return fleet.get(identity, parse(JobRef, "get", arguments).job_id)


def _list(fleet: Fleet, identity: Identity, arguments: Mapping[str, Any]) -> BaseModel:
    args = parse(ListArguments, "list", arguments)
    return fleet.list_jobs(
        identity,
        states=None if args.states is None else tuple(str(s) for s in args.states),
        queue=args.queue,
        idempotency_key=args.idempotency_key,
        parent_id=args.parent_id,
        limit=args.limit,
        cursor=args.cursor,
    )


def _history(fleet: Fleet, identity: Identity, arguments: Mapping[str, Any]) -> BaseModel:
    return History(events=fleet.history(identity, parse(JobRef, "history", arguments).job_id))


def _cancel(fleet: Fleet, identity: Identity, arguments: Mapping[str, Any]) -> BaseModel:
    args = parse(CancelArguments, "cancel", arguments)
    return fleet.cancel(identity, args.job_id, args.reason)


@dataclass(frozen=True)
class FleetTool:
    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    """Its JSON Schema is the tool's input schema."""
    output: type[BaseModel]
    """Its JSON Schema (serialisation form) is the tool's output schema."""
    run: Callable[[Fleet, Identity, Mapping[str, Any]], BaseModel]
    """Blocking: the server runs it in a worker thread."""
    annotations: ToolAnnotations

    def input_schema(self) -> dict[str, Any]:
        return self.arguments.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        return self.output.model_json_schema(mode="serialization")


TOOLS: tuple[FleetTool, ...] = (
    FleetTool(
        name="submit",
        title="Submit a job",
        description=(
            "Submit a job in the token's tenant; needs the submitter role. Every field is optional: "
            "queue, kind (leaf|composite), priority, capabilities a worker must have, deps (jobs "
            "that must succeed first, or reach a phase for soft deps), run_at (ISO 8601 with an "
            "offset), payload (a JSON object for the worker), retry, lease_seconds, budget, "
            "parent_id, phases, profile. With an idempotency_key, resubmitting the same content "
            "returns the same job (outcome 'existing'); different content replaces a job that has "
            "not started (outcome 'superseded'). Returns {job, outcome, superseded_job_id}."
        ),
        arguments=SubmitArguments,
        output=SubmitResult,
        run=_submit,
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
    ),
    FleetTool(
        name="get",
        title="Get a job",
        description="A job's current state, spec, lease, checkpoint, result or error (reader role).",
        arguments=JobRef,
        output=JobView,
        run=_get,
        annotations=ToolAnnotations(read_only_hint=True),
    ),
    FleetTool(
        name="list",
        title="List jobs",
        description=(
            "The tenant's jobs in submission order, filtered by states, queue, idempotency_key or "
            "parent_id (reader role). Up to `limit` per page; pass next_cursor back as `cursor` "
            "for the next page (null: no more)."
        ),
        arguments=ListArguments,
        output=JobPage,
        run=_list,
        annotations=ToolAnnotations(read_only_hint=True),
    ),
    FleetTool(
        name="history",
        title="A job's history",
        description=(
            "Every event of a job, in order: version, type (JobSubmitted, LeaseGranted, "
            "LeaseExpired, JobSucceeded...), time and data (reader role)."
        ),
        arguments=JobRef,
        output=History,
        run=_history,
        annotations=ToolAnnotations(read_only_hint=True),
    ),
    FleetTool(
        name="cancel",
        title="Cancel a job",
        description=(
            "Cancel a job that has not finished (submitter role); a leased job's worker learns of "
            "it on its next renewal. Blocked dependents dead-letter. Returns the job."
        ),
        arguments=CancelArguments,
        output=JobView,
        run=_cancel,
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False),
    ),
)

BY_NAME: dict[str, FleetTool] = {tool.name: tool for tool in TOOLS}
