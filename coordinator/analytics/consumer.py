"""The analytics consumer: follows the event log into an analytics sink (ClickHouse).

One pass (``run_once``) moves one batch: it reads a closed range of notification ids,
records the range as pending, folds it into rows, writes one insert per table with a
token derived from the range, then moves the position. A crash anywhere in between is
harmless: the next leader finds the pending range, re-reads exactly it (ids follow
commit order, so the range's contents are fixed), and re-sends the same inserts with the
same tokens, which the sink drops where they already landed.

Only the leader writes (``LeaderLock``). It re-checks leadership before every batch and
gives up its state when the lock is lost. When the sink is down it backs off (exponential
with jitter) and keeps the batch's rows: nothing is dropped, and it resumes where it was.
When the sink's parts pile up, batches grow (fewer, larger inserts) until merges catch up.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from tenacity import Retrying, retry_if_exception_type, stop_any, wait_random_exponential
from tenacity.stop import stop_base

from coordinator.analytics.rebuild import REBUILD_SUFFIX, RebuildResult, fold_batch, timed_replay
from coordinator.errors import CoordinatorError, Unavailable
from coordinator.ports import AnalyticsSink, Clock, Notice, Store
from projections.analytics import AnalyticsFold, RowBatch

log = logging.getLogger("fleetlog.analytics")

PROJECTION = "clickhouse"
REFUSED_RETRY_SECONDS = 30.0
"""After a refusal that retrying soon will not fix, the next attempt (an operator fixes it)."""


class ConsumerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 5_000
    """Events per batch at normal pressure (more are left for the next pass)."""
    max_batch_size: Annotated[int, Field(ge=1, le=5_000_000)] = 100_000
    """The most events per batch when ClickHouse's parts pile up."""
    linger_seconds: Annotated[float, Field(ge=0, le=60)] = 0.1
    """Before taking a batch that is not full, wait this long for more events to join it:
    the time bound of a batch (at most ~1/linger inserts a second while events trickle in;
    doubled under pressure, up to ``max_linger_seconds``). Adds up to this much lag."""
    max_linger_seconds: Annotated[float, Field(ge=0, le=600)] = 2.0
    idle_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    """Longest wait for new events before looking again (a wake-up comes sooner)."""
    parts_high: Annotated[int, Field(ge=1)] = 300
    """Active parts in one partition above which batches grow (ClickHouse slows down
    past a few hundred and refuses inserts at ``parts_to_throw_insert``, 3000 by default)."""
    pressure_every_seconds: Annotated[float, Field(gt=0)] = 5.0
    retry_max_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    """The longest backoff between attempts to reach a sink that is down."""
    max_contexts: Annotated[int, Field(ge=1)] = 100_000
    rebuild_batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 50_000
    """Events per insert when rebuilding: each insert costs ClickHouse a fixed ~0.1 s
    (parts, dedup bookkeeping), so a replay of the whole log takes big bites."""


@dataclass
class BatchResult:
    events: int = 0
    rows: int = 0
    first: int | None = None
    last: int | None = None
    retried_pending: bool = False
    leader: bool = True


@dataclass
class ConsumerStats:
    batches: int = 0
    events: int = 0
    rows: int = 0
    write_failures: int = 0
    leadership_lost: int = 0
    last_error: str | None = None
    last_batch_at: datetime | None = None
    batch_size: int = 0
    linger_seconds: float = 0.0
    parts: int | None = None
    merges: int | None = None


class LeadershipLost(Exception):
    """Another consumer moved the position: this one must stop writing."""


class _Stopped(stop_base):
    def __init__(self, stop: threading.Event):
        self.stop = stop

    def __call__(self, retry_state: object) -> bool:
        return self.stop.is_set()


class AnalyticsConsumer:
    def __init__(
        self,
        store: Store,
        sink: AnalyticsSink,
        clock: Clock,
        *,
        config: ConsumerConfig | None = None,
        name: str = PROJECTION,
        member: str = "fleetlog",
    ):
        self.store = store
        self.sink = sink
        self.clock = clock
        self.config = config or ConsumerConfig()
        self.name = name
        self.member = member
        """Who this consumer is, as recorded in the position row (host:pid)."""
        self.positions = store.analytics_positions()
        self.lock = store.leader_lock(f"analytics-{name}")
        self.fold = AnalyticsFold(self.config.max_contexts)
        self.stats = ConsumerStats(
            batch_size=self.config.batch_size, linger_seconds=self.config.linger_seconds
        )
        self._stop = threading.Event()
        self._last_pressure = 0.0
        self._leader = False

    # ---------------------------------------------------------------- one pass

    def is_leader(self) -> bool:
        return self._leader

    def lead(self) -> bool:
        """Take (or confirm) leadership; on loss, forget everything folded so far."""
        if self._leader and self.lock.held():
            return True
        if self._leader:
            self._lose("the leader lock's connection is gone")
        if not self.lock.try_acquire():
            return False
        self._leader = True
        self.fold = AnalyticsFold(self.config.max_contexts)
        self._finish_recorded_swap()
        log.info("analytics consumer %s leads projection %s", self.member, self.name)
        return True

    def _finish_recorded_swap(self) -> None:
        position = self.positions.get(self.name)
        if position is not None and position.swap is not None:
            self._finish_swap(*position.swap)

    def _lose(self, why: str) -> None:
        log.warning("analytics consumer %s lost leadership of %s: %s", self.member, self.name, why)
        self.stats.leadership_lost += 1
        self._leader = False
        self.lock.release()
        self.fold = AnalyticsFold(self.config.max_contexts)

    def run_once(self) -> BatchResult:
        if not self.lead():
            return BatchResult(leader=False)
        position = self.positions.get(self.name)
        done = 0 if position is None else position.position
        if position is not None and position.pending is not None:
            first, last = position.pending
            notes = self._read_range(first, last)
            result = self._write(notes, first, last, done, already_pending=True)
        else:
            notes = self.store.read_notifications(done + 1, self.stats.batch_size)
            if not notes:
                return BatchResult()
            result = self._write(notes, done + 1, notes[-1].notification_id, done, already_pending=False)
        self._watch_pressure()
        return result

    def _read_range(self, first: int, last: int) -> list[Notice]:
        notes: list[Notice] = []
        start = first
        while start <= last:
            page = self.store.read_notifications(start, max(self.config.batch_size, 1000), last)
            if not page:
                break
            notes.extend(page)
            start = page[-1].notification_id + 1
        return notes

    def _write(
        self, notes: list[Notice], first: int, last: int, done: int, *, already_pending: bool
    ) -> BatchResult:
        now = self.clock.now()
        if not already_pending and not self.positions.begin(self.name, done, (first, last), self.member, now):
            self._lose("the position moved under it (another consumer is writing)")
            raise LeadershipLost(self.name)
        rows = self._fold(notes)
        self._send(rows, f"{self.name}:{first}-{last}")
        if not self.positions.commit(self.name, last, self.clock.now()):
            self._lose("the pending range was cleared by another consumer")
            raise LeadershipLost(self.name)
        count = sum(len(r) for r in rows.values())
        self.stats.batches += 1
        self.stats.events += len(notes)
        self.stats.rows += count
        self.stats.last_batch_at = self.clock.now()
        return BatchResult(len(notes), count, first, last, retried_pending=already_pending)

    def _fold(self, notes: list[Notice]) -> RowBatch:
        return fold_batch(self.store, self.fold, notes)

    def _send(self, rows: RowBatch, token: str) -> None:
        """Write, retrying while the sink is down (the rows are kept: nothing is dropped)."""

        def attempt() -> None:
            try:
                self.sink.write(rows, token)
            except Unavailable as exc:
                self.stats.write_failures += 1
                self.stats.last_error = exc.message
                log.warning("analytics sink unavailable, backing off: %s", exc.message)
                raise

        retrying = Retrying(
            retry=retry_if_exception_type(Unavailable),
            wait=wait_random_exponential(multiplier=0.2, max=self.config.retry_max_seconds),
            stop=stop_any(_Stopped(self._stop)),
            sleep=self._pause,
            reraise=True,
        )
        retrying(attempt)
        self.stats.last_error = None

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop cuts a backoff short

    def _watch_pressure(self) -> None:
        """Grow batches while parts pile up; shrink back once merges have caught up."""
        now = self.clock.now().timestamp()
        if now - self._last_pressure < self.config.pressure_every_seconds:
            return
        self._last_pressure = now
        try:
            pressure = self.sink.pressure()
        except Unavailable:
            return
        self.stats.parts, self.stats.merges = pressure.active_parts_max, pressure.merges_running
        c, s = self.config, self.stats
        before = (s.batch_size, s.linger_seconds)
        if pressure.active_parts_max > c.parts_high:
            s.batch_size = min(s.batch_size * 2, c.max_batch_size)
            s.linger_seconds = min(max(s.linger_seconds * 2, 0.05), c.max_linger_seconds)
        elif pressure.active_parts_max < c.parts_high // 2:
            s.batch_size = max(s.batch_size // 2, c.batch_size)
            s.linger_seconds = max(s.linger_seconds / 2, c.linger_seconds)
        if (s.batch_size, s.linger_seconds) != before:
            log.warning(
                "analytics: %d active parts in a partition, %d merges running: batches of up to %d "
                "events, lingering %.2f s",
                pressure.active_parts_max,
                pressure.merges_running,
                s.batch_size,
                s.linger_seconds,
            )

    # ------------------------------------------------------------- the rebuild

    def rebuild(self) -> RebuildResult:
        """Replay the whole log into a fresh database and swap it in (as the leader)."""
        if not self.lead():
            raise LeadershipLost(self.name)
        fresh_name = self.sink.database + REBUILD_SUFFIX
        fresh = self.sink.fresh(fresh_name)
        fold, result = timed_replay(
            self.store, fresh, self.config.rebuild_batch_size, self.config.max_contexts
        )
        # Recorded before the swap: a crash from here on is finished by the next leader.
        self.positions.prepare_swap(self.name, fresh_name, result.position, self.member, self.clock.now())
        self._finish_swap(fresh_name, result.position)
        self.fold = fold  # it has seen exactly the log up to the new position
        log.info(
            "analytics: rebuilt %d events in %.1f s (%.0f events/s)",
            result.events,
            result.seconds,
            result.events_per_second,
        )
        return result

    def _rebuild_requested(self) -> bool:
        position = self.positions.get(self.name)
        if position is None or position.rebuild_requested_at is None:
            return False
        return position.rebuilt_at is None or position.rebuilt_at < position.rebuild_requested_at

    # ---------------------------------------------------------------- the swap

    def _finish_swap(self, database: str, position: int) -> None:
        """Complete a swap a previous leader recorded (idempotent)."""
        if self.sink.has_database(database):
            self.sink.swap_in(database)
        self.positions.finish_swap(self.name, self.clock.now())
        log.info("analytics: swapped in rebuilt tables up to notification %d", position)

    def close(self) -> None:
        """Give up leadership (the lock's session or file)."""
        self.lock.release()
        self._leader = False

    # ---------------------------------------------------------------- the loop

    def run(self, stop: threading.Event) -> None:
        """Follow the log until ``stop``: wake on appends, linger briefly to batch."""
        self._stop = stop
        signal = self.store.log_signal()
        try:
            while not stop.is_set():
                signal.arm()
                try:
                    if self._leader and self._rebuild_requested():
                        self.rebuild()
                    result = self.run_once()
                except LeadershipLost:
                    continue
                except Unavailable as exc:
                    # The event store is unreachable: try again after a pause.
                    log.warning("analytics consumer pass failed, will retry: %s", exc.message)
                    stop.wait(self.config.idle_seconds)
                    continue
                except CoordinatorError as exc:
                    # Refused for good by the sink (a schema it does not have, say): keep
                    # the pending range, say so in the status, and try again slowly rather
                    # than let the thread die and the lag grow unseen.
                    self.stats.last_error = exc.message
                    log.error(
                        "analytics consumer pass refused, retrying in %.0f s: %s",
                        REFUSED_RETRY_SECONDS,
                        exc.message,
                    )
                    stop.wait(REFUSED_RETRY_SECONDS)
                    continue
                if not result.leader:
                    stop.wait(self.config.idle_seconds)
                elif result.events >= self.stats.batch_size:
                    continue  # behind: take the next batch at once
                elif result.events:
                    # Caught up with a partial batch: let the next one fill for a moment,
                    # so a steady stream becomes a few inserts a second, not one per commit
                    # (each insert costs ClickHouse a fixed share of CPU and a part to merge).
                    signal.work_found()
                    stop.wait(self.stats.linger_seconds)
                else:
                    signal.wait(self.config.idle_seconds)
                    if self.stats.linger_seconds:
                        stop.wait(self.stats.linger_seconds)
        finally:
            signal.close()
            self.lock.release()
            self._leader = False
