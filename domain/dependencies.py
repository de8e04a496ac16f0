"""Dependency rules: when an edge is satisfied, when it can never be, and cycles.

The coordinator feeds these pure functions with the current status of the jobs
involved; the rules themselves know nothing about storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

from domain.errors import DependencyCycle
from domain.job.spec import Dependency, DependencyMode
from domain.job.states import JobState


@dataclass(frozen=True)
class DependencyStatus:
    """What an edge needs to know about the job it points at."""

    job_id: UUID
    state: JobState
    phase: str | None
    phases: tuple[str, ...]
    superseded_by: UUID | None = None


NEVER = frozenset({JobState.CANCELLED, JobState.DEAD_LETTER})


def milestone_for(dep: Dependency, target: DependencyStatus) -> str | None:
    """Fill in a soft edge's milestone: the declared one, else the target's last phase."""
    if dep.mode is DependencyMode.HARD:
        return None
    if dep.milestone is not None:
        return dep.milestone
    return target.phases[-1] if target.phases else None


def is_satisfied(dep: Dependency, target: DependencyStatus) -> bool:
    if target.state is JobState.SUCCEEDED:
        return True
    if dep.mode is DependencyMode.HARD or dep.milestone is None:
        return False
    if target.state not in (JobState.ASSIGNED, JobState.RUNNING) or target.phase is None:
        return False
    phases = target.phases
    if dep.milestone not in phases or target.phase not in phases:
        return False
    return phases.index(target.phase) >= phases.index(dep.milestone)


def has_failed(dep: Dependency, target: DependencyStatus) -> bool:
    """The edge can never be satisfied (until an operator requeues the dependency)."""
    return target.state in NEVER


def find_cycle(
    start: UUID, edges_of: Callable[[Iterable[UUID]], Mapping[UUID, Iterable[UUID]]]
) -> list[UUID] | None:
    """A path start -> ... -> start through dependency edges, or None.

    ``edges_of(ids)`` returns each id's dependencies; it is called once per level so a
    store can answer with one query per level.
    """
    parent: dict[UUID, UUID] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        edges = edges_of(frontier)
        nxt: list[UUID] = []
        for node in frontier:
            for dep in edges.get(node, ()):
                if dep == start:
                    return _path(parent, node, start)
                if dep not in seen:
                    seen.add(dep)
                    parent[dep] = node
                    nxt.append(dep)
        frontier = nxt
    return None


def _path(parent: dict[UUID, UUID], last: UUID, start: UUID) -> list[UUID]:
    path = [last]
    while path[-1] != start:
        path.append(parent[path[-1]])
    path.reverse()
    return [*path, start]


def raise_if_cycle(
    start: UUID,
    edges_of: Callable[[Iterable[UUID]], Mapping[UUID, Iterable[UUID]]],
    label: Callable[[UUID], str],
) -> None:
    cycle = find_cycle(start, edges_of)
    if cycle is not None:
        raise DependencyCycle([label(node) for node in cycle])


@dataclass(frozen=True)
class Verdict:
    failed: tuple[UUID, JobState] | None
    """The first dependency that can never be satisfied, with its state."""
    unmet: tuple[UUID, ...]

    @property
    def met(self) -> bool:
        return self.failed is None and not self.unmet


def evaluate(deps: Iterable[Dependency], statuses: Mapping[UUID, DependencyStatus]) -> Verdict:
    """Judge a job's dependencies against their current status."""
    unmet = []
    for dep in deps:
        status = statuses.get(dep.job_id)
        if status is None:
            unmet.append(dep.job_id)
        elif is_satisfied(dep, status):
            continue
        elif has_failed(dep, status):
            return Verdict(failed=(dep.job_id, status.state), unmet=tuple(unmet))
        else:
            unmet.append(dep.job_id)
    return Verdict(failed=None, unmet=tuple(unmet))
