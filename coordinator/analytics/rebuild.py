"""Rebuild and verify the analytics projection from the event log.

A rebuild replays the whole log into a fresh database and swaps it in. It runs as the
projection's leader (the consumer's own thread, or a CLI holding the lock), so no live
batch interleaves with it. The swap is recorded before it starts (``prepare_swap``) and
completed idempotently, so a crash mid-swap is finished by the next leader.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from coordinator.ports import AnalyticsSink, Notice, Store
from projections.analytics import AnalyticsFold, RowBatch

log = logging.getLogger("fleetlog.analytics")

REBUILD_SUFFIX = "__rebuild"


@dataclass(frozen=True)
class RebuildResult:
    events: int
    position: int
    seconds: float
    rows: dict[str, int]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def fold_batch(store: Store, fold: AnalyticsFold, notes: list[Notice]) -> RowBatch:
    """Fold a batch, priming any aggregate the fold has no context for (first seen in the
    middle of its history, or evicted from the fold's bounded memory)."""
    for note in notes:
        event = note.event
        if fold.needs_priming(event.originator_id, event.originator_version):
            fold.prime(store.history_before(event.originator_id, event.originator_version))
        fold.apply(note.notification_id, event)
    return fold.take()


def replay(
    store: Store, sink: AnalyticsSink, fold: AnalyticsFold, batch_size: int, token: str
) -> tuple[int, int]:
    """Fold the whole log (from id 1) into ``sink``; (events, last notification id).

    Two stages overlap: while one batch's inserts run (in ClickHouse, which does not hold
    the GIL), the next batch is read from the log and folded. One batch at most waits, so
    memory stays bounded; inserts stay in log order (one writer thread).
    """
    position = events = 0
    with _paused_gc(), _Writer(sink) as writer:
        while True:
            notes = store.read_notifications(position + 1, batch_size)
            if not notes:
                break
            first, last = notes[0].notification_id, notes[-1].notification_id
            writer.put(fold_batch(store, fold, notes), f"{token}:{first}-{last}")
            events += len(notes)
            position = last
    return events, position


@contextmanager
def _paused_gc() -> Iterator[None]:
    """A replay allocates millions of long-lived objects (events, rows, per-job contexts)
    and makes no reference cycles; CPython's cyclic collector would traverse them again
    and again (measured on 200,000 events: half of the rebuild's time). Reference counting
    still frees everything; the collector resumes when the replay ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Writer:
    """One background writer with a one-slot queue; its failure surfaces in the caller."""

    def __init__(self, sink: AnalyticsSink):
        self.sink = sink
        self._queue: queue.Queue[tuple[RowBatch, str] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fleetlog-rebuild-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.sink.write(*item)
                except BaseException as exc:  # handed to the caller's thread, re-raised there
                    self._error = exc

    def put(self, rows: RowBatch, token: str) -> None:
        self._raise()
        self._queue.put((rows, token))

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc[0] is None:
            self._raise()


@dataclass
class Differences:
    """What verify found: empty lists mean the sink agrees with the log."""

    missing: list[UUID] = field(default_factory=list)
    """Aggregates in the log (up to the position) with no rows in fleet_events."""
    extra: list[UUID] = field(default_factory=list)
    """Aggregates in fleet_events that the log (up to the position) does not have."""
    mismatched: dict[UUID, tuple[tuple[int, int, int], tuple[int, int, int]]] = field(default_factory=dict)
    """Aggregate -> ((log min, max, count), (sink min, max, count))."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.mismatched)


@dataclass(frozen=True)
class VerifyResult:
    position: int
    events_in_log: int
    rows: dict[str, int]
    differences: Differences

    @property
    def ok(self) -> bool:
        return not self.differences and self.rows.get("fleet_events") == self.events_in_log


def log_ranges(store: Store, position: int, page: int = 5000) -> tuple[int, dict[UUID, tuple[int, int, int]]]:
    """(events up to ``position``, per aggregate (min version, max version, count))."""
    lows: dict[UUID, int] = {}
    highs: dict[UUID, int] = {}
    counts: defaultdict[UUID, int] = defaultdict(int)
    start, total = 1, 0
    while start <= position:
        notes: list[Notice] = store.read_notifications(start, page, position)
        if not notes:
            break
        for n in notes:
            e = n.event
            lows.setdefault(e.originator_id, e.originator_version)
            highs[e.originator_id] = e.originator_version
            counts[e.originator_id] += 1
        total += len(notes)
        start = notes[-1].notification_id + 1
    return total, {k: (lows[k], highs[k], counts[k]) for k in counts}


def verify(store: Store, sink: AnalyticsSink, position: int) -> VerifyResult:
    """Row counts and per-aggregate version ranges of ``fleet_events`` against the log."""
    total, expected = log_ranges(store, position)
    actual = sink.version_ranges()
    diff = Differences(
        missing=sorted(k for k in expected if k not in actual),
        extra=sorted(k for k in actual if k not in expected),
        mismatched={k: (v, actual[k]) for k, v in expected.items() if k in actual and actual[k] != v},
    )
    return VerifyResult(position, total, sink.row_counts(), diff)


def timed_replay(
    store: Store, sink: AnalyticsSink, batch_size: int, max_contexts: int
) -> tuple[AnalyticsFold, RebuildResult]:
    fold = AnalyticsFold(max_contexts)
    started = time.perf_counter()
    events, position = replay(store, sink, fold, batch_size, "rebuild")
    seconds = time.perf_counter() - started
    return fold, RebuildResult(events, position, seconds, sink.row_counts())
