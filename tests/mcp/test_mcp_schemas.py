"""The tools' input schemas say what the coordinator accepts: no more, no less.

``submit``'s schema is ``JobSpec``'s, widened to the shorthand its validator takes; an
MCP client (or a model) that follows the schema writes a spec ``JobSpec`` accepts."""

from __future__ import annotations

from typing import Any, get_args
from uuid import uuid4

import pytest
from jsonschema import Draft202012Validator

from adapters.mcp.tools import BY_NAME, TOOLS, FleetTool
from adapters.submit_schema import PriorityName
from domain.job import JobSpec
from domain.job.spec import PRIORITY_NAMES

SUBMIT = Draft202012Validator(BY_NAME["submit"].input_schema())

VALID_SPECS: list[dict[str, Any]] = [
    {},
    {"priority": "high", "queue": "render", "payload": {"doc": [1, {"page": 2}]}},
    {"priority": 0, "kind": "composite", "phases": ["fetch", "parse"], "capabilities": ["gpu"]},
    {
        "deps": [str(uuid4()), {"job_id": str(uuid4()), "mode": "soft", "milestone": "fetch"}],
        "deps_mode": "soft",
    },
    {
        "idempotency_key": "order-42",
        "run_at": "2030-01-01T09:00:00+01:00",
        "retry": {"max_attempts": 5, "backoff": "linear", "retry_on": ["timeout"]},
        "lease_seconds": 30,
        "budget": {"usd": 1.5, "tokens": 10000},
        "parent_id": str(uuid4()),
        "profile": {"name": "summarise", "version": 2},
    },
]

INVALID_SPECS: list[dict[str, Any]] = [
    {"priority": 101},
    {"priority": "urgent"},
    {"colour": "red"},
    {"queue": "Bad Queue"},
    {"deps_mode": "sometimes"},
    {"retry": {"max_attempts": 0}},
    {"payload": [1, 2]},
]


def test_submit_takes_every_field_of_a_job_spec() -> None:
    properties = BY_NAME["submit"].input_schema()["properties"]

    assert set(properties) == set(JobSpec.model_fields) | {"deps_mode"}


def test_the_priority_names_are_the_specs() -> None:
    assert set(get_args(PriorityName)) == set(PRIORITY_NAMES)


@pytest.mark.parametrize("spec", VALID_SPECS)
def test_a_spec_the_schema_allows_is_a_valid_job_spec(spec: dict[str, Any]) -> None:
    assert list(SUBMIT.iter_errors(spec)) == []
    JobSpec.model_validate(spec)


@pytest.mark.parametrize("spec", INVALID_SPECS)
def test_a_spec_the_schema_refuses_is_refused_by_the_job_spec(spec: dict[str, Any]) -> None:
    assert list(SUBMIT.iter_errors(spec)) != []
    with pytest.raises(ValueError):
        JobSpec.model_validate(spec)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_every_schema_is_a_valid_json_schema_that_forbids_unknown_fields(tool: FleetTool) -> None:
    for schema in (tool.input_schema(), tool.output_schema()):
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
    assert tool.input_schema()["additionalProperties"] is False
