"""Transitions declared as data.

Each aggregate declares ``{EventClass: Transition(sources, targets)}``. A command asks
the table before it triggers an event; ``apply`` then assigns the target without asking
again, so replaying a stored history can never raise.

``targets`` empty means the event leaves the state unchanged (a self-loop such as a
lease renewal); more than one target means the event carries the chosen one in its
``state`` field (for example ``JobSubmitted`` lands in blocked, scheduled or queued).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from domain.errors import IllegalTransition

S = TypeVar("S", bound=StrEnum)

INITIAL = None
"""The source of a creation event: the aggregate does not exist yet."""


@dataclass(frozen=True)
class Transition(Generic[S]):
    sources: frozenset[S | None]
    targets: frozenset[S]

    @classmethod
    def of(cls, sources: Iterable[S | None], targets: Iterable[S] = ()) -> Transition[S]:
        return cls(frozenset(sources), frozenset(targets))

    def target_for(self, current: S | None, chosen: S | None = None) -> S | None:
        """The state after this event, or None when the state does not change."""
        if chosen is not None:
            return chosen
        if len(self.targets) == 1:
            return next(iter(self.targets))
        return current


class TransitionTable(Generic[S]):
    """An aggregate's transition table with the checks commands need."""

    def __init__(self, aggregate: str, rows: Mapping[type, Transition[S]]):
        self.aggregate = aggregate
        self.rows = dict(rows)

    def check(self, event: type, current: S | None, chosen: S | None = None) -> None:
        """Raise IllegalTransition unless ``event`` may happen in ``current``."""
        row = self.rows.get(event)
        if row is None or current not in row.sources:
            raise IllegalTransition(
                aggregate=self.aggregate,
                event=event.__name__,
                state=None if current is None else str(current),
                allowed_from=sorted(str(s) for s in (row.sources if row else ()) if s),
            )
        if chosen is not None and chosen not in row.targets:
            raise IllegalTransition(
                aggregate=self.aggregate,
                event=event.__name__,
                state=None if current is None else str(current),
                allowed_from=sorted(str(s) for s in row.sources if s),
                target=str(chosen),
            )

    def allows(self, event: type, current: S | None) -> bool:
        row = self.rows.get(event)
        return row is not None and current in row.sources

    def pairs(self) -> set[tuple[str, str | None]]:
        """Every (event name, source state) pair the table allows."""
        return {
            (event.__name__, None if s is None else str(s))
            for event, row in self.rows.items()
            for s in row.sources
        }

    def mermaid(self) -> str:
        """The state-changing rows as a Mermaid state diagram (docs are generated from the
        code); events that leave the state unchanged are listed by ``self_loops``."""
        lines = ["stateDiagram-v2"]
        for event, row in self.rows.items():
            for source in sorted(row.sources, key=lambda s: "" if s is None else str(s)):
                src = "[*]" if source is None else str(source)
                for target in sorted(str(t) for t in row.targets):
                    lines.append(f"    {src} --> {target}: {event.__name__}")
        return "\n".join(lines)

    def self_loops(self) -> dict[str, list[str]]:
        """Events that leave the state as it is, with the states they may happen in."""
        return {
            event.__name__: sorted(str(s) for s in row.sources if s is not None)
            for event, row in self.rows.items()
            if not row.targets
        }
