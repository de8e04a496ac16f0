"""Dependency rules: satisfaction, failure, verdicts, milestones and cycles."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.dependencies import (
    DependencyStatus,
    evaluate,
    find_cycle,
    has_failed,
    is_satisfied,
    milestone_for,
    raise_if_cycle,
)
from domain.errors import DependencyCycle
from domain.job import JobState
from domain.job.spec import Dependency, DependencyMode

S = JobState
PHASES = ("plan", "build", "test")


def status(state: JobState = S.QUEUED, phase: str | None = None, **overrides: Any) -> DependencyStatus:
    fields: dict[str, Any] = {"job_id": uuid4(), "state": state, "phase": phase, "phases": PHASES}
    fields.update(overrides)
    return DependencyStatus(**fields)


def hard(target: DependencyStatus) -> Dependency:
    return Dependency(job_id=target.job_id, mode=DependencyMode.HARD)


def soft(target: DependencyStatus, milestone: str | None = "build") -> Dependency:
    return Dependency(job_id=target.job_id, mode=DependencyMode.SOFT, milestone=milestone)


# ------------------------------------------------------------ is_satisfied


@pytest.mark.parametrize("state", list(JobState))
def test_hard_edge_is_satisfied_only_by_success(state: JobState) -> None:
    target = status(state, phase="test")
    assert is_satisfied(hard(target), target) is (state is S.SUCCEEDED)


@pytest.mark.parametrize(
    ("state", "phase", "satisfied"),
    [
        (S.RUNNING, "plan", False),  # before the milestone
        (S.RUNNING, "build", True),  # at it
        (S.RUNNING, "test", True),  # past it
        (S.ASSIGNED, "test", True),
        (S.RUNNING, None, False),  # no phase reported yet
        (S.RUNNING, "deploy", False),  # an undeclared phase says nothing about order
        (S.QUEUED, "test", False),  # a phase from an earlier attempt no longer counts
        (S.FAILED, "test", False),
        (S.SUCCEEDED, None, True),
    ],
)
def test_soft_edge_follows_phase_order(state: JobState, phase: str | None, satisfied: bool) -> None:
    target = status(state, phase)
    assert is_satisfied(soft(target, "build"), target) is satisfied


def test_soft_edge_without_milestone_needs_success() -> None:
    running = status(S.RUNNING, "test")
    assert not is_satisfied(soft(running, None), running)
    done = status(S.SUCCEEDED)
    assert is_satisfied(soft(done, None), done)


def test_soft_edge_to_an_undeclared_milestone_waits_for_success() -> None:
    target = status(S.RUNNING, "test")
    assert not is_satisfied(soft(target, "ship"), target)


# -------------------------------------------------------------- has_failed


@pytest.mark.parametrize("state", list(JobState))
def test_only_cancelled_and_dead_letter_can_never_succeed(state: JobState) -> None:
    target = status(state)
    assert has_failed(hard(target), target) is (state in {S.CANCELLED, S.DEAD_LETTER})
    assert has_failed(soft(target), target) is (state in {S.CANCELLED, S.DEAD_LETTER})


# ---------------------------------------------------------------- evaluate


def test_evaluate_met_when_every_edge_is_satisfied() -> None:
    a, b = status(S.SUCCEEDED), status(S.RUNNING, "test")
    verdict = evaluate([hard(a), soft(b)], {a.job_id: a, b.job_id: b})
    assert verdict.met and verdict.unmet == () and verdict.failed is None


def test_evaluate_lists_unmet_and_unknown_edges() -> None:
    a, b, unknown = status(S.RUNNING, "plan"), status(S.SUCCEEDED), uuid4()
    deps = [soft(a), hard(b), Dependency(job_id=unknown, mode=DependencyMode.HARD)]
    verdict = evaluate(deps, {a.job_id: a, b.job_id: b})
    assert not verdict.met
    assert verdict.unmet == (a.job_id, unknown)


def test_evaluate_reports_the_first_failed_edge() -> None:
    ok, dead, cancelled = status(S.SUCCEEDED), status(S.DEAD_LETTER), status(S.CANCELLED)
    statuses = {s.job_id: s for s in (ok, dead, cancelled)}
    verdict = evaluate([hard(ok), hard(dead), hard(cancelled)], statuses)
    assert not verdict.met
    assert verdict.failed == (dead.job_id, S.DEAD_LETTER)


# ------------------------------------------------------------ milestone_for


def test_milestone_for_hard_edges_is_none() -> None:
    target = status()
    assert milestone_for(hard(target), target) is None


def test_milestone_for_soft_edges_defaults_to_the_last_phase() -> None:
    target = status()
    assert milestone_for(soft(target, None), target) == "test"
    assert milestone_for(soft(target, "plan"), target) == "plan"


def test_milestone_for_soft_edge_to_a_job_without_phases_is_none() -> None:
    target = status(phases=())
    assert milestone_for(soft(target, None), target) is None


# -------------------------------------------------------------------- cycles

Graph = dict[UUID, set[UUID]]


def edges_of(graph: Graph) -> Any:
    def lookup(ids: Iterable[UUID]) -> Mapping[UUID, Iterable[UUID]]:
        return {i: graph.get(i, set()) for i in ids}

    return lookup


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[UUID], Graph]:
    """Random DAGs: node i may depend only on nodes after it, so no cycle can exist."""
    nodes = [uuid4() for _ in range(draw(st.integers(1, 12)))]
    graph: Graph = {n: set() for n in nodes}
    for i, node in enumerate(nodes):
        later = nodes[i + 1 :]
        if later:
            graph[node] = set(draw(st.lists(st.sampled_from(later), max_size=4)))
    return nodes, graph


def reachable(graph: Graph, start: UUID) -> set[UUID]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


@settings(max_examples=100)
@given(dags())
def test_random_dags_have_no_cycle(dag: tuple[list[UUID], Graph]) -> None:
    nodes, graph = dag
    for node in nodes:
        assert find_cycle(node, edges_of(graph)) is None


@settings(max_examples=150)
@given(dags(), st.data())
def test_a_back_edge_makes_a_real_cycle_through_the_start(dag: tuple[list[UUID], Graph], data: Any) -> None:
    # Given a DAG, a start node and any node reachable from it (itself included)
    nodes, graph = dag
    start = data.draw(st.sampled_from(nodes))
    back_from = data.draw(st.sampled_from(sorted(reachable(graph, start))))
    # When that node gains an edge back to the start
    graph[back_from].add(start)
    cycle = find_cycle(start, edges_of(graph))
    # Then the cycle starts and ends at the start, and every step is a real edge
    assert cycle is not None
    assert cycle[0] == cycle[-1] == start
    assert len(cycle) >= 2
    for a, b in itertools.pairwise(cycle):
        assert b in graph[a], f"{a} -> {b} is not an edge"
    assert len(set(cycle[:-1])) == len(cycle) - 1, "a cycle visits each node once"


def test_self_dependency_is_a_cycle_of_one() -> None:
    node = uuid4()
    assert find_cycle(node, edges_of({node: {node}})) == [node, node]


def test_edges_are_fetched_once_per_level() -> None:
    # Given a chain a -> b -> c / Then the store is asked one level at a time
    a, b, c = uuid4(), uuid4(), uuid4()
    graph: Graph = {a: {b}, b: {c}, c: set()}
    asked: list[list[UUID]] = []

    def recording(ids: Iterable[UUID]) -> Mapping[UUID, Iterable[UUID]]:
        asked.append(list(ids))
        return edges_of(graph)(asked[-1])

    assert find_cycle(a, recording) is None
    assert asked == [[a], [b], [c]]


def test_raise_if_cycle_names_the_path() -> None:
    a, b = uuid4(), uuid4()
    names = {a: "a", b: "b"}
    with pytest.raises(DependencyCycle, match="a -> b -> a"):
        raise_if_cycle(a, edges_of({a: {b}, b: {a}}), names.__getitem__)
