"""The analytics consumer against a real event store (SQLite and PostgreSQL) and real
chDB: events reach every table, crashes at any point leave no gap and no duplicate,
rebuild equals live, ClickHouse being down loses nothing, one leader at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from adapters.analytics.analytics import ClickHouseAnalytics
from adapters.analytics.client import AnalyticsSettings, open_client
from adapters.analytics.errors import AnalyticsRefused
from adapters.bootstrap import Settings
from coordinator.analytics import AnalyticsConsumer, ConsumerConfig, analytics_status, verify
from coordinator.analytics import consumer as consumer_module
from coordinator.analytics.rebuild import timed_replay
from coordinator.claiming import ClaimRequest
from coordinator.errors import Unavailable
from coordinator.fleet import Fleet
from coordinator.ports import PartsPressure
from domain.job.spec import ErrorInfo, RunInsights
from tests.analytics.conftest import Ch
from tests.support import FakeClock, build_fleet, fleet_wide, pg_admin, tenant

RAW = ("fleet_events", "job_runs", "run_insights", "jobs_latest")
ACME = tenant("acme")
WORKER = fleet_wide("worker-1")


class Crash(BaseException):
    """A process dying mid-batch (not an error anything would catch and handle)."""


@pytest.fixture
def analytics(ch: Ch) -> ClickHouseAnalytics:
    return ClickHouseAnalytics(ch.client, ch.settings)


_made: list[AnalyticsConsumer] = []


@pytest.fixture(autouse=True)
def _release_locks() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()


def consumer(fleet: Fleet, sink: Any, clock: FakeClock, **config: Any) -> AnalyticsConsumer:
    made = AnalyticsConsumer(fleet.ctx.store, sink, clock, config=ConsumerConfig(**config), member="test")
    _made.append(made)
    return made


def drain(c: AnalyticsConsumer) -> int:
    events = 0
    while (r := c.run_once()).events:
        events += r.events
    return events


def work(fleet: Fleet, clock: FakeClock, jobs: int = 6) -> None:
    """Submits, runs with insights, fails and retries, and a zombie's stale write."""
    ids = [fleet.submit(ACME, {"queue": "q", "payload": {"n": i}}).job.id for i in range(jobs)]
    claimed = fleet.claim(WORKER, ClaimRequest(factory_id="f1", max_jobs=jobs, lease_seconds=30))
    assert len(claimed) == jobs
    first, second, *rest = claimed
    usage = RunInsights(model="m-1", tokens_in=100, tokens_out=20, cost_usd=0.5)
    fleet.succeed(WORKER, first.job.id, first.epoch, result={"ok": True}, insights=usage)
    fleet.fail(WORKER, second.job.id, second.epoch, ErrorInfo(kind="timeout", message="slow", retryable=True))
    for c in rest[:2]:
        fleet.succeed(WORKER, c.job.id, c.epoch)
    clock.advance(60)  # the rest's leases expire
    fleet.reaper.run_once()
    with pytest.raises(Exception, match=r"(?i)stale|epoch"):
        fleet.succeed(WORKER, rest[2].job.id, rest[2].epoch)
    assert ids


def counts(ch: Ch, database: str | None = None) -> dict[str, int]:
    db = database or ch.settings.database
    # No FINAL: what an analyst's plain query sees must already be exact.
    return {t: int(str(ch.scalar(f"SELECT count() FROM {db}.{t}"))) for t in RAW if t != "jobs_latest"}


def snapshot(ch: Ch) -> dict[str, list[tuple[Any, ...]]]:
    db = ch.settings.database
    out = {}
    for t in RAW:
        out[t] = sorted(map(tuple, ch.client.query(f"SELECT * FROM {db}.{t} FINAL").result_rows), key=repr)
    out["tenant_hourly_v"] = sorted(
        map(tuple, ch.client.query(f"SELECT * FROM {db}.tenant_hourly_v").result_rows), key=repr
    )
    out["model_daily_v"] = sorted(
        map(tuple, ch.client.query(f"SELECT * FROM {db}.model_daily_v").result_rows), key=repr
    )
    return out


def test_events_reach_every_table_and_verify_agrees(
    fleet: Fleet, analytics: ClickHouseAnalytics, ch: Ch, clock: FakeClock
) -> None:
    # Given a history with successes, a retryable failure, expiries and a stale write
    work(fleet, clock)
    c = consumer(fleet, analytics, clock, batch_size=7)  # several batches
    # When the consumer catches up
    events = drain(c)
    store = fleet.ctx.store
    head = store.notification_head()
    assert head is not None and events == len(store.read_notifications(1, 10_000)) >= 18
    # Then every table has rows, fleet_events has every event once, and verify agrees
    n = counts(ch)
    assert n["fleet_events"] == events
    assert n["job_runs"] >= 6 and n["run_insights"] == 1
    assert (
        ch.scalar(f"SELECT count() FROM {ch.settings.database}.job_runs WHERE outcome = 'stale_rejected'")
        == 1
    )
    assert ch.scalar(f"SELECT count() FROM {ch.settings.database}.jobs_latest FINAL") == 6
    result = verify(store, analytics, head.notification_id)
    assert result.ok, result.differences
    status = analytics_status(store, clock, c.name)
    assert (status.position, status.events_behind, status.seconds_behind) == (head.notification_id, 0, 0.0)


def test_a_crash_between_insert_and_position_update_duplicates_nothing(
    fleet: Fleet, analytics: ClickHouseAnalytics, ch: Ch, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    work(fleet, clock)
    first = consumer(fleet, analytics, clock, batch_size=10)
    positions = first.positions

    def die(*args: object) -> bool:
        raise Crash

    # Given a consumer that dies after its inserts, before moving its position
    monkeypatch.setattr(positions, "commit", die)
    with pytest.raises(Crash):
        first.run_once()
    first.lock.release()
    # When another consumer (a restart: nothing in memory) takes over
    second = consumer(fleet, analytics, clock, batch_size=10)
    drain(second)
    # Then no row is doubled and none is missing
    head = fleet.ctx.store.notification_head()
    assert head is not None
    assert counts(ch)["fleet_events"] == len(fleet.ctx.store.read_notifications(1, 10_000))
    assert verify(fleet.ctx.store, analytics, head.notification_id).ok


class DiesAfter:
    """A sink that writes ``tables`` of a batch, then dies (between two tables' inserts)."""

    def __init__(self, inner: ClickHouseAnalytics, tables: int):
        self.inner = inner
        self.tables = tables
        self.database = inner.database

    def write(self, batch: Mapping[str, Sequence[Sequence[Any]]], token: str) -> None:
        written = 0
        for table, rows in batch.items():
            if rows and written == self.tables:
                raise Crash
            if rows:
                self.inner.write({table: rows}, token)
                written += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("tables_written", [1, 2, 3])
def test_a_crash_between_two_tables_inserts_leaves_no_gap_and_no_duplicate(
    fleet: Fleet, analytics: ClickHouseAnalytics, ch: Ch, clock: FakeClock, tables_written: int
) -> None:
    work(fleet, clock)
    dying = consumer(fleet, DiesAfter(analytics, tables_written), clock, batch_size=1000)
    with pytest.raises(Crash):
        dying.run_once()
    dying.lock.release()
    restarted = consumer(fleet, analytics, clock, batch_size=1000)
    first = restarted.run_once()
    assert first.retried_pending  # it re-read exactly the pending range
    drain(restarted)
    # The same rows as a consumer that never crashed, written into another database.
    reference = snapshot(ch)
    clean_ch = ch.settings.model_copy(update={"database": ch.settings.database + "_ref"})
    ref_sink = ClickHouseAnalytics(ch.client, clean_ch)
    ref_sink.migrate()
    try:
        store = fleet.ctx.store
        timed_replay(store, ref_sink, 1000, 1000)
        ref = Ch(clean_ch, ch.client, ref_sink.sink)
        assert snapshot(ref) == reference
        assert counts(ch) == counts(ref)
    finally:
        ch.client.command(f"DROP DATABASE IF EXISTS {clean_ch.database} SYNC")


def test_rebuild_equals_live_and_the_consumer_goes_on_after_it(
    fleet: Fleet, analytics: ClickHouseAnalytics, ch: Ch, clock: FakeClock
) -> None:
    work(fleet, clock)
    c = consumer(fleet, analytics, clock, batch_size=5)
    drain(c)
    live = snapshot(ch)
    # When the projection is rebuilt from the log and swapped in
    result = c.rebuild()
    # Then the tables and the aggregates are what the live consumer had built
    assert snapshot(ch) == live
    assert result.events == counts(ch)["fleet_events"]
    assert not analytics.has_database(ch.settings.database + "__rebuild")
    # And the consumer carries on from the rebuilt position (nothing doubled)
    fleet.submit(ACME, {"queue": "q"})
    assert drain(c) == 1  # its JobSubmitted, once
    head = fleet.ctx.store.notification_head()
    assert head is not None and verify(fleet.ctx.store, analytics, head.notification_id).ok


def test_a_swap_interrupted_by_a_crash_is_finished_not_undone(
    fleet: Fleet, analytics: ClickHouseAnalytics, ch: Ch, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    work(fleet, clock)
    c = consumer(fleet, analytics, clock)
    drain(c)
    live = snapshot(ch)
    # Given a rebuild that exchanged the tables, then died before dropping and recording
    real_finish = c.positions.finish_swap

    def die(*args: object) -> None:
        raise Crash

    monkeypatch.setattr(c.positions, "finish_swap", die)
    with pytest.raises(Crash):
        c.rebuild()
    c.lock.release()
    monkeypatch.setattr(c.positions, "finish_swap", real_finish)
    # When the next leader starts
    nxt = consumer(fleet, analytics, clock)
    drain(nxt)
    # Then the swap is complete (not exchanged back) and the rows are the same
    assert snapshot(ch) == live
    pos = nxt.positions.get(nxt.name)
    assert pos is not None and pos.swap is None and pos.rebuilt_at is not None


class Down:
    """ClickHouse unreachable for the first ``failures`` writes: the real refusal of a
    closed port, then the real sink."""

    def __init__(self, inner: ClickHouseAnalytics, failures: int):
        self.inner = inner
        self.failures = failures
        self.database = inner.database

    def write(self, batch: Mapping[str, Sequence[Sequence[Any]]], token: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            open_client(AnalyticsSettings(url="http://127.0.0.1:1"))  # raises Unavailable
        self.inner.write(batch, token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_closed_port_is_unavailable_with_a_hint() -> None:
    with pytest.raises(Unavailable, match="CLICKHOUSE_URL"):
        ClickHouseAnalytics.open(AnalyticsSettings(url="http://127.0.0.1:1"))


def test_clickhouse_down_loses_nothing_and_the_consumer_catches_up(
    fleet: Fleet, analytics: ClickHouseAnalytics, ch: Ch, clock: FakeClock
) -> None:
    sink = Down(analytics, failures=4)
    c = consumer(fleet, sink, clock, retry_max_seconds=0.05, idle_seconds=0.05, linger_seconds=0)
    stop = threading.Event()
    runner = threading.Thread(target=c.run, args=(stop,))
    runner.start()
    try:
        # While ClickHouse refuses, work goes on and events pile up in the log
        work(fleet, clock)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if analytics_status(fleet.ctx.store, clock, c.name).events_behind == 0:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(10)
    assert sink.failures == 0 and c.stats.write_failures >= 4
    head = fleet.ctx.store.notification_head()
    assert head is not None
    assert verify(fleet.ctx.store, analytics, head.notification_id).ok


def test_only_one_consumer_leads_and_a_lost_lock_stops_the_writer(
    fleet: Fleet, analytics: ClickHouseAnalytics, clock: FakeClock
) -> None:
    fleet.submit(ACME, {"queue": "q"})
    a = consumer(fleet, analytics, clock)
    b = consumer(fleet, analytics, clock)
    assert a.run_once().leader
    assert not b.run_once().leader  # a holds the lock
    # When a's lock goes (its session ends: a crash, a failover, a killed backend)
    a.lock.release()
    assert b.run_once().leader
    fleet.submit(ACME, {"queue": "q"})
    assert b.run_once().events >= 1
    a._leader = True  # a still believes it leads
    assert not a.run_once().leader  # it checks before writing, and stands down
    assert a.stats.leadership_lost == 1


class Piling:
    """A sink whose merges fall behind (reported parts), then catch up."""

    def __init__(self, inner: ClickHouseAnalytics, parts: int):
        self.inner = inner
        self.parts = parts
        self.database = inner.database

    def pressure(self) -> PartsPressure:
        return PartsPressure(active_parts_max=self.parts, merges_running=3)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_batches_grow_while_parts_pile_up_and_shrink_back(
    fleet: Fleet, analytics: ClickHouseAnalytics, clock: FakeClock
) -> None:
    sink = Piling(analytics, parts=900)
    c = consumer(fleet, sink, clock, batch_size=10, max_batch_size=40, pressure_every_seconds=1)
    sizes = []
    for _ in range(4):
        fleet.submit(ACME, {"queue": "q"})
        c.run_once()
        sizes.append(c.stats.batch_size)
        clock.advance(2)
    assert sizes == [20, 40, 40, 40] and c.stats.parts == 900 and c.stats.merges == 3
    assert c.stats.linger_seconds > c.config.linger_seconds
    sink.parts = 10  # merges caught up: back to the configured size, step by step
    for _ in range(4):
        fleet.submit(ACME, {"queue": "q"})
        c.run_once()
        clock.advance(2)
    assert c.stats.batch_size == 10 and c.stats.linger_seconds == c.config.linger_seconds


@pytest.mark.postgres
def test_a_killed_lock_session_is_leadership_lost(
    pg_database: str, analytics: ClickHouseAnalytics, clock: FakeClock
) -> None:
    fleet = build_fleet(Settings(database_url=pg_database), clock)
    try:
        fleet.submit(ACME, {"queue": "q"})
        a = consumer(fleet, analytics, clock)
        assert a.run_once().leader
        # When an operator (or a failover) ends the lock's session
        with pg_admin() as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
                (pg_database.rsplit("/", 1)[-1],),
            ).fetchall()
        assert killed == [(True,)]
        # Then the consumer notices before writing, stands down, and another can lead
        fleet.submit(ACME, {"queue": "q"})
        b = consumer(fleet, analytics, clock)
        first = a.run_once()
        assert a.stats.leadership_lost == 1
        assert first.leader != b.run_once().leader or first.leader  # exactly one of them leads
        leaders = [x for x in (a, b) if x.is_leader()]
        assert len(leaders) == 1
    finally:
        fleet.close()


class RefusesOnce:
    """ClickHouse refusing a write for good (a missing table, say) until someone fixes it."""

    def __init__(self, inner: ClickHouseAnalytics):
        self.inner = inner
        self.refusals = 0
        self.database = inner.database

    def write(self, batch: Mapping[str, Sequence[Sequence[Any]]], token: str) -> None:
        if self.refusals == 0:
            self.refusals += 1
            raise AnalyticsRefused("writing", 60, "Table fleet_events does not exist")
        self.inner.write(batch, token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_refused_write_is_retried_not_fatal(
    fleet: Fleet,
    analytics: ClickHouseAnalytics,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(consumer_module, "REFUSED_RETRY_SECONDS", 0.05)
    sink = RefusesOnce(analytics)
    c = consumer(fleet, sink, clock, idle_seconds=0.05, linger_seconds=0)
    fleet.submit(ACME, {"queue": "q"})
    stop = threading.Event()
    runner = threading.Thread(target=c.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while analytics_status(fleet.ctx.store, clock, c.name).events_behind and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(10)
    # The refusal was reported, the thread lived on, and the next attempt caught up
    assert sink.refusals == 1
    assert any("refused" in r.message and "does not exist" in r.message for r in caplog.records)
    assert analytics_status(fleet.ctx.store, clock, c.name).events_behind == 0
    assert c.stats.last_error is None  # cleared by the write that worked
