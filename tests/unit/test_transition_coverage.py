"""Proof that every row of every transition table is reachable through commands.

For each aggregate: bring fresh aggregates to every state through commands only, try
every command on each, replay the resulting histories from scratch and collect the
(event, source state) pairs they exercised. The set must equal the table's pairs: a
missing pair is a row no command can reach (dead data, or a missing command); an
extra pair is a command that bypasses the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from domain.factory import FACTORY_TRANSITIONS
from domain.job import JOB_TRANSITIONS
from domain.job.apply import APPLY as _APPLY
from domain.profile import PROFILE_TRANSITIONS
from domain.tenant import TENANT_TRANSITIONS
from domain.transitions import TransitionTable
from tests.unit.histories import factory_histories, job_histories, profile_histories, tenant_histories


def exercised(histories: Iterable[list[Any]], state_of: Callable[[Any], Any]) -> set[tuple[str, Any]]:
    """Replay each history from nothing, noting each event with the state it met."""
    pairs: set[tuple[str, Any]] = set()
    for events in histories:
        aggregate = None
        for event in events:
            source: str | None = None if aggregate is None else str(state_of(aggregate))
            pairs.add((type(event).__name__, source))
            aggregate = event.mutate(aggregate)
    return pairs


def test_job_commands_exercise_exactly_the_job_table() -> None:
    pairs = exercised(job_histories(), lambda job: job.state)
    assert pairs - JOB_TRANSITIONS.pairs() == set(), "commands bypass the table"
    assert JOB_TRANSITIONS.pairs() - pairs == set(), "table rows no command reaches"


def test_every_job_event_has_exactly_one_apply_step() -> None:
    assert set(_APPLY) == set(JOB_TRANSITIONS.rows)
    assert len(set(_APPLY.values())) == len(_APPLY), "two events share an apply step"


def test_factory_commands_exercise_exactly_the_factory_table() -> None:
    pairs = exercised(factory_histories(), lambda factory: factory.health)
    assert pairs == FACTORY_TRANSITIONS.pairs()


def test_profile_commands_exercise_exactly_the_profile_table() -> None:
    pairs = exercised(profile_histories(), lambda profile: profile.state)
    assert pairs == PROFILE_TRANSITIONS.pairs()


def test_tenant_commands_exercise_exactly_the_tenant_table() -> None:
    pairs = exercised(tenant_histories(), lambda tenant: tenant.state)
    assert pairs == TENANT_TRANSITIONS.pairs()


# ------------------------------------------------------------------- diagrams


@pytest.mark.parametrize(
    "table", [JOB_TRANSITIONS, FACTORY_TRANSITIONS, PROFILE_TRANSITIONS, TENANT_TRANSITIONS]
)
def test_mermaid_and_self_loops_render_every_row(table: TransitionTable[Any]) -> None:
    # Given the table's diagram and its list of state-preserving events
    lines = table.mermaid().splitlines()
    loops = table.self_loops()
    # Then the diagram has one arrow per (event, source, target) that changes state, and
    # every event that changes nothing is listed with the states it may happen in
    assert lines[0] == "stateDiagram-v2"
    expected = set()
    for event, row in table.rows.items():
        sources = sorted(str(s) for s in row.sources if s is not None)
        if not row.targets:
            assert loops[event.__name__] == sources
        for source in row.sources:
            src = "[*]" if source is None else str(source)
            for target in sorted(str(t) for t in row.targets):
                expected.add(f"    {src} --> {target}: {event.__name__}")
    assert set(lines[1:]) == expected
    assert len(lines) - 1 == len(expected)
    assert set(loops) == {event.__name__ for event, row in table.rows.items() if not row.targets}
