#!/usr/bin/env python
"""The ClickHouse analytics consumer under load (issue 4): live lag during the W2 drain, and
rebuild throughput from the event log into the embedded engine (chDB).

    .venv/bin/python bench/bench_analytics.py [--dsn DSN] [--n 50000] [--procs 2] [--concurrency 4]
                                              [--repeats 3] [--rebuilds 1] [--baseline] [--out FILE]
    .venv/bin/python bench/bench_analytics.py --n 3000 --repeats 1 --min-events 0   # smoke (~1 min)

Targets (issue 4): rebuild >= 20,000 events/s on the embedded engine; live lag p99 < 1 s
during the drain.

Every repeat, in one process (the bench process owns chDB, as ``fleetlog serve`` does):

  1. PostgreSQL: ``--database`` (default fleetlog_bench_analytics) dropped, recreated and
     migrated, by bench_fleetlog.py's own ``reset`` (its ``build`` gives the adapter: same
     bulk submit, worker processes, done query and verification as its W2 drain).
     ClickHouse: a fresh database ``bench_r<repeat>`` in a fresh chDB directory (a temporary
     directory per run, on the same disk as /tmp unless ``--chdb-parent``).
  2. The consumer starts: ``AnalyticsConsumer`` (default ``ConsumerConfig``) over
     ``ClickHouseAnalytics`` on a thread of this process, following the log as ``serve`` does.
  3. W1 bulk: N jobs with ``Fleet.submit_many`` (chunks of 1000). The consumer follows the
     submits; the drain starts only once it has caught up with them (timed, reported).
  4. W2 drain, as bench_fleetlog.py's direct path: ANALYZE, CHECKPOINT, ``--procs`` spawned
     worker processes (the real ``Worker`` over ``DirectPort``, ``--concurrency`` each), "go",
     done when ``fleet_jobs`` shows N succeeded (20 Hz poll near the end). Its jobs/s are
     recorded (``--baseline`` also runs the same drain without the consumer, first).
  5. Live lag, per event: (wall time the batch's ClickHouse INSERTs returned) - (the event's
     timestamp), taken in a wrapper of the sink's ``write()`` from the ``fleet_events`` rows
     (columns ``notification_id`` and ``at``). The window: events appended after "go" up to
     the log's head when the drain finished (the submit events are before it; the consumer
     had caught up with them). After the drain the consumer is given time to catch up
     (reported), then stopped. Also: batches and mean batch size over the window, where the
     consumer's time went (reading the log, priming reads, the fold, inserts, position), the
     consumer thread's CPU (its own CPU clock) and the whole bench process's (which includes
     chDB's threads).
  6. Checks: the drain's (every job succeeded exactly once, from the event log), the log's
     size (>= ``--min-events``, default 200,000, else the run stops), and
     ``coordinator.analytics.verify`` of the live projection.
  7. Rebuild (``--rebuilds`` times): ``consumer.rebuild()``: a fresh database, the whole log
     replayed into it (``timed_replay``), the swap. Reported: events/s over the whole call
     (the headline) and over the replay alone, with the fresh-database and swap seconds.
     Every rebuild is verified (``verify`` must be ok) or the run fails.
  8. ``--profile-rebuild``: one more rebuild under cProfile (not in the figures); prints the
     top functions and writes a .pstats file beside ``--out``.

Nothing else should run meanwhile (2 cores): workers, PostgreSQL, chDB and the consumer share them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from argparse import Namespace
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import bench_fleetlog as bf  # puts the project root and the peers' harness on sys.path
import common  # the peers' harness (WorkerSet, wait_count, percentile, ...)
import psycopg

from adapters.analytics.analytics import ClickHouseAnalytics
from adapters.analytics.client import AnalyticsSettings, open_client
from adapters.analytics.migrate import drop_schema
from coordinator.analytics import PROJECTION, AnalyticsConsumer, ConsumerConfig, verify
from coordinator.submission import MAX_BATCH
from projections.analytics import COLUMNS

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "tmp" / "analytics.json"
REBUILD_TARGET = 20_000.0
"""Issue 4: rebuild events/s on the embedded engine, at least."""
LAG_P99_TARGET = 1.0
"""Issue 4: live lag p99 during the drain, seconds, below."""
CONSUMER_POOL = 4
"""Pool of the consumer's Fleet (positions, log reads; the lock and LISTEN have their own)."""
NID = COLUMNS["fleet_events"].index("notification_id")
AT = COLUMNS["fleet_events"].index("at")
LAG_WINDOW = (
    "events appended after the drain's go up to the log's head when the drain finished; the consumer "
    "was started before the bulk submit and had caught up with the submit events before go"
)


# --------------------------------------------------------------------------- instruments
class Probe:
    """Wall seconds and calls per phase, and the (insert returned, events) of each write."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.window_from: int | None = None
        """Record the events with a notification id above this (None: record nothing)."""
        self.written: list[tuple[float, list[tuple[int, datetime]]]] = []

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] += seconds
        self.calls[key] += 1

    def take(self) -> dict[str, dict[str, float]]:
        out = {k: {"seconds": round(v, 4), "calls": self.calls[k]} for k, v in sorted(self.seconds.items())}
        self.seconds.clear()
        self.calls.clear()
        return out


class TimedStore:
    """The consumer's Store with its log reads and priming reads timed."""

    def __init__(self, store: Any, probe: Probe):
        self._store, self._probe = store, probe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def read_notifications(self, first: int, limit: int, last: int | None = None) -> Any:
        t = time.perf_counter()
        try:
            return self._store.read_notifications(first, limit, last)
        finally:
            self._probe.add("read_log", time.perf_counter() - t)

    def history_before(self, originator_id: Any, version: int) -> Any:
        t = time.perf_counter()
        try:
            return self._store.history_before(originator_id, version)
        finally:
            self._probe.add("prime_read", time.perf_counter() - t)


class TimedAnalytics(ClickHouseAnalytics):
    """ClickHouseAnalytics whose write() notes when the INSERTs returned, per event."""

    probe: Probe | None = None
    record = True

    def write(self, batch: Any, token: str) -> None:
        t = time.perf_counter()
        super().write(batch, token)
        returned = time.time()
        probe = self.probe
        if probe is None:
            return
        probe.add("insert", time.perf_counter() - t)
        since = probe.window_from
        if self.record and since is not None:
            events = [(r[NID], r[AT]) for r in batch.get("fleet_events") or () if r[NID] > since]
            if events:
                probe.written.append((returned, events))

    def fresh(self, database: str) -> ClickHouseAnalytics:
        t = time.perf_counter()
        made = super().fresh(database)
        timed = TimedAnalytics(made.client, made.settings, made.database)
        timed.probe, timed.record = self.probe, False
        if self.probe is not None:
            self.probe.add("fresh_database", time.perf_counter() - t)
        return timed

    def swap_in(self, fresh: str) -> None:
        t = time.perf_counter()
        super().swap_in(fresh)
        if self.probe is not None:
            self.probe.add("swap", time.perf_counter() - t)


class TimedConsumer(AnalyticsConsumer):
    """The consumer with its passes and its fold (priming reads included) timed."""

    probe: Probe

    def run_once(self) -> Any:
        t = time.perf_counter()
        result = super().run_once()
        self.probe.add("batch" if result.events else "idle_pass", time.perf_counter() - t)
        return result

    def _fold(self, notes: Any) -> Any:
        t = time.perf_counter()
        try:
            return super()._fold(notes)
        finally:
            self.probe.add("fold_with_priming", time.perf_counter() - t)


def rusage_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def consumer_config(args: argparse.Namespace) -> ConsumerConfig:
    values: dict[str, Any] = {}
    for item in args.consumer_set:
        key, sep, value = item.partition("=")
        if not sep or key not in ConsumerConfig.model_fields:
            raise SystemExit(f"--consumer-set wants FIELD=VALUE with a ConsumerConfig field, got {item!r}")
        values[key] = json.loads(value)
    return ConsumerConfig(**values)


class Follower:
    """The consumer on a thread of this process, as ``fleetlog serve`` runs it."""

    def __init__(
        self, store: Any, analytics: TimedAnalytics, clock: Any, probe: Probe, config: ConsumerConfig
    ):
        self.probe = probe
        self.consumer = TimedConsumer(
            TimedStore(store, probe), analytics, clock, config=config, member="bench"
        )
        self.consumer.probe = probe
        self.positions = store.analytics_positions()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="analytics-consumer", daemon=True)
        self._clock_id: int | None = None

    def _run(self) -> None:
        try:
            self.consumer.run(self.stop_event)
        except BaseException as exc:
            self.error = exc
            raise

    def start(self) -> None:
        self.thread.start()
        self._clock_id = time.pthread_getcpuclockid(self.thread.ident or 0)

    def thread_cpu(self) -> float:
        try:
            return time.clock_gettime(self._clock_id) if self._clock_id is not None else float("nan")
        except OSError:  # the thread has ended
            return float("nan")

    def position(self) -> int:
        p = self.positions.get(PROJECTION)
        return 0 if p is None else p.position

    def wait_for(self, head: int, timeout: float) -> float:
        """Seconds until the consumer's position reaches ``head``."""
        t0 = time.perf_counter()
        while self.position() < head:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"the consumer thread ended: {self.error!r}")
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"consumer at {self.position()}, head {head}, after {timeout:g} s")
            time.sleep(0.02)
        return time.perf_counter() - t0

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        if self.thread.is_alive():
            raise RuntimeError("the consumer thread did not stop within 60 s")


# --------------------------------------------------------------------------- one repeat
def log_size(url: str) -> tuple[int, int]:
    """(events in the log, last notification id)."""
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute("SELECT count(*), coalesce(max(notification_id), 0) FROM fleetlog_events").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def head(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute("SELECT coalesce(max(notification_id), 0) FROM fleetlog_events").fetchone()
    return int(row[0]) if row else 0


def drain(
    adapter: common.Adapter, args: Namespace, cfg: dict[str, Any], url: str, follower: Follower | None
) -> dict[str, Any]:
    """W1 bulk then the W2 drain, exactly as the harness runs W2 (common.run_all), with the
    consumer's catch-up before go and its figures around it when ``follower`` is given."""
    n = args.n
    out: dict[str, Any] = {"with_consumer": follower is not None}
    out["submit_s"] = round(adapter.run_coro(adapter.enqueue_bulk(n)), 3)
    if follower is not None:
        submitted = head(url)
        out["consumer_catchup_after_submit_s"] = round(follower.wait_for(submitted, args.catchup_timeout), 3)
        out["submit_events"] = submitted
    if adapter.analyze_tables:
        common.sql(url, *[f"ANALYZE {t}" for t in adapter.analyze_tables])
    common.checkpoint(url)
    ws = common.WorkerSet(adapter.worker_child, args.procs, cfg)
    ws.start()
    marks: dict[str, Any] = {}
    if follower is not None:
        follower.probe.take()  # the submit phase's timings are not the drain's
        marks["head_at_go"] = follower.probe.window_from = head(url)
        marks["stats"] = (follower.consumer.stats.batches, follower.consumer.stats.events)
        marks["cpu"] = (follower.thread_cpu(), rusage_cpu(), time.thread_time())
    c0 = common.cpu_busy()
    t0 = ws.go_now()
    trace: list[Any] = []
    try:
        t1, _ = common.wait_count(url, adapter.done_sql, n, args.drain_timeout, trace=trace)
        if follower is not None:  # the workers idle meanwhile, as a server's would
            out["consumer"] = consumer_window(follower, marks, head(url), t0=t0, t1=t1, args=args)
    finally:
        coll = ws.stop_and_collect()
    dt = t1 - t0
    out.update(
        {
            "seconds": round(dt, 3),
            "jobs_per_s": n / dt,
            "quarters": common.quarter_times(trace, t0, n),
            "machine_busy_pct": common.cpu_pct(c0, common.cpu_busy()),
            "worker_cpu_s": coll["worker_cpu_s"],
            "worker_cpu_ms_per_job": round(1e3 * sum(coll["worker_cpu_s"]) / n, 3),
            "handled_per_proc": coll["handled_per_proc"],
        }
    )
    out["verify"] = adapter.verify(n)
    return out


def consumer_window(
    follower: Follower, marks: dict[str, Any], end_head: int, *, t0: float, t1: float, args: Namespace
) -> dict[str, Any]:
    """Lag and cost of the consumer for the drain's events (go .. the head at the drain's end)."""
    follower.wait_for(end_head, args.catchup_timeout)
    now = time.perf_counter()
    catchup, wall = now - t1, now - t0  # drain's end / go .. caught up with the drain's events
    thread_cpu, proc_cpu, main_cpu = follower.thread_cpu(), rusage_cpu(), time.thread_time()
    batches = follower.consumer.stats.batches - marks["stats"][0]
    events = follower.consumer.stats.events - marks["stats"][1]
    timings = follower.probe.take()
    go_head = marks["head_at_go"]
    lags = sorted(
        done - at.timestamp()
        for done, pairs in follower.probe.written
        for nid, at in pairs
        if nid <= end_head
    )
    follower.probe.window_from = None
    follower.probe.written = []
    pct = common.percentile
    consumer_cpu = thread_cpu - marks["cpu"][0]
    process_cpu = proc_cpu - marks["cpu"][1] - (main_cpu - marks["cpu"][2])
    busy = sum(v["seconds"] for k, v in timings.items() if k == "batch")
    return {
        "lag_window": LAG_WINDOW,
        "head_at_go": go_head,
        "head_at_drain_end": end_head,
        "events_in_window": len(lags),
        "lag_p50_s": pct(lags, 50),
        "lag_p95_s": pct(lags, 95),
        "lag_p99_s": pct(lags, 99),
        "lag_max_s": lags[-1] if lags else None,
        "lag_mean_s": statistics.fmean(lags) if lags else None,
        "catchup_after_drain_end_s": round(catchup, 3),
        "drain_s": round(t1 - t0, 3),
        "window_wall_s": round(wall, 3),
        "batches": batches,
        "events": events,
        "mean_batch_events": round(events / batches, 1) if batches else None,
        "consumer_thread_cpu_s": round(consumer_cpu, 3),
        "consumer_thread_cpu_pct_of_one_core": round(100 * consumer_cpu / wall, 1),
        "bench_process_cpu_s_without_main_thread": round(process_cpu, 3),
        "bench_process_cpu_pct_of_machine": round(100 * process_cpu / wall / (os.cpu_count() or 1), 1),
        "consumer_cpu_ms_per_1000_events": round(1e6 * consumer_cpu / events, 2) if events else None,
        "busy_in_batches_s": round(busy, 3),
        "timings": timings,
    }


def rebuild_once(follower: Follower, store: Any) -> dict[str, Any]:
    consumer = follower.consumer
    follower.probe.take()
    cpu0, main0 = rusage_cpu(), time.thread_time()
    t = time.perf_counter()
    result = consumer.rebuild()
    total = time.perf_counter() - t
    cpu, main = rusage_cpu() - cpu0, time.thread_time() - main0
    timings = follower.probe.take()
    t = time.perf_counter()
    check = verify(store, consumer.sink, result.position)
    verify_s = time.perf_counter() - t
    return {
        "events": result.events,
        "position": result.position,
        "seconds": round(total, 3),
        "events_per_s": result.events / total if total > 0 else None,
        "replay_seconds": round(result.seconds, 3),
        "replay_events_per_s": result.events_per_second,
        "rows": result.rows,
        "process_cpu_s": round(cpu, 3),
        "main_thread_cpu_s": round(main, 3),
        "timings": timings,
        "verify_ok": check.ok,
        "verify": {
            "events_in_log": check.events_in_log,
            "rows": check.rows,
            "missing": len(check.differences.missing),
            "extra": len(check.differences.extra),
            "mismatched": len(check.differences.mismatched),
        },
        "verify_s": round(verify_s, 3),
    }


def profile_rebuild(follower: Follower, store: Any, out: Path) -> dict[str, Any]:
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    result = follower.consumer.rebuild()
    prof.disable()
    total = time.perf_counter() - t
    check = verify(store, follower.consumer.sink, result.position)
    path = out.with_suffix(".rebuild.pstats")
    prof.dump_stats(str(path))
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(25)
    print(text.getvalue(), flush=True)
    return {
        "pstats": str(path),
        "events": result.events,
        "seconds_under_profile": round(total, 3),
        "verify_ok": check.ok,
    }


def one_repeat(
    r: int,
    args: Namespace,
    adapter: common.Adapter,
    *,
    cfg: dict[str, Any],
    url: str,
    chdb_url: str,
    keeper: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"repeat": r, "load_avg_at_start": os.getloadavg()}
    if args.baseline:
        adapter.reset()
        out["baseline_drain"] = drain(adapter, args, cfg, url, None)
        log(f"r{r} baseline drain (no consumer): {out['baseline_drain']['jobs_per_s']:,.0f} jobs/s")
    adapter.reset()
    base = AnalyticsSettings(url=chdb_url)
    settings = base.model_copy(update={"database": f"bench_r{r}"})
    fleet = bf.fleet_for(url, CONSUMER_POOL)
    analytics = TimedAnalytics(open_client(settings), settings)  # as ClickHouseAnalytics.open()
    analytics.migrate()
    probe = Probe()
    analytics.probe = probe
    follower = Follower(fleet.ctx.store, analytics, fleet.ctx.clock, probe, consumer_config(args))
    try:
        follower.start()
        d = drain(adapter, args, cfg, url, follower)
        out["drain"] = d
        c = d["consumer"]
        log(
            f"r{r} drain with the consumer: {d['jobs_per_s']:,.0f} jobs/s ({d['seconds']} s); lag over "
            f"{c['events_in_window']} events p50 {c['lag_p50_s']:.3f} s, p95 {c['lag_p95_s']:.3f} s, "
            f"p99 {c['lag_p99_s']:.3f} s, max {c['lag_max_s']:.3f} s; {c['batches']} batches of "
            f"{c['mean_batch_events']} events; caught up {c['catchup_after_drain_end_s']} s after the "
            f"drain; consumer thread {c['consumer_thread_cpu_pct_of_one_core']}% of a core; "
            f"verify={d['verify'].get('ok')}"
        )
        follower.stop()
        events, last = log_size(url)
        out["events_in_log"], out["last_notification_id"] = events, last
        log(f"r{r} event log: {events:,} events (last notification id {last:,})")
        if events < args.min_events:
            raise SystemExit(
                f"the log holds {events:,} events, fewer than --min-events {args.min_events:,}: "
                "raise --n (about 4 events per drained job)"
            )
        t = time.perf_counter()
        live = verify(fleet.ctx.store, analytics, follower.position())
        out["live_verify"] = {"ok": live.ok, "rows": live.rows, "seconds": round(time.perf_counter() - t, 3)}
        log(f"r{r} live projection verify: ok={live.ok} rows={live.rows}")
        out["rebuilds"] = []
        for k in range(args.rebuilds):
            one = rebuild_once(follower, fleet.ctx.store)
            out["rebuilds"].append(one)
            log(
                f"r{r} rebuild {k}: {one['events']:,} events in {one['seconds']} s = "
                f"{one['events_per_s']:,.0f} events/s (replay alone {one['replay_seconds']} s = "
                f"{one['replay_events_per_s']:,.0f} events/s); verify ok={one['verify_ok']}"
            )
        if args.profile_rebuild and r == args.repeats - 1:
            out["profiled_rebuild"] = profile_rebuild(follower, fleet.ctx.store, Path(args.out))
    finally:
        if follower.thread.is_alive():
            follower.stop()
        follower.consumer.close()
        analytics.close()
        fleet.close()
        drop_schema(keeper, base, settings.database)
    return out


# --------------------------------------------------------------------------- the run
def log(*a: Any) -> None:
    print("[analytics]", *a, flush=True)


def summary(vals: list[Any]) -> dict[str, Any]:
    return common.summarize([v for v in vals if v is not None])


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    drains = [r["drain"] for r in runs]
    cons = [d["consumer"] for d in drains]
    rebuilds = [b for r in runs for b in r["rebuilds"]]
    out = {
        "events_in_log": summary([r["events_in_log"] for r in runs]),
        "drain_jobs_per_s": summary([d["jobs_per_s"] for d in drains]),
        "baseline_drain_jobs_per_s": summary(
            [r["baseline_drain"]["jobs_per_s"] for r in runs if "baseline_drain" in r]
        ),
        "lag_p50_s": summary([c["lag_p50_s"] for c in cons]),
        "lag_p95_s": summary([c["lag_p95_s"] for c in cons]),
        "lag_p99_s": summary([c["lag_p99_s"] for c in cons]),
        "lag_max_s": summary([c["lag_max_s"] for c in cons]),
        "events_in_lag_window": summary([c["events_in_window"] for c in cons]),
        "batches": summary([c["batches"] for c in cons]),
        "mean_batch_events": summary([c["mean_batch_events"] for c in cons]),
        "catchup_after_drain_end_s": summary([c["catchup_after_drain_end_s"] for c in cons]),
        "consumer_thread_cpu_pct_of_one_core": summary(
            [c["consumer_thread_cpu_pct_of_one_core"] for c in cons]
        ),
        "consumer_cpu_ms_per_1000_events": summary([c["consumer_cpu_ms_per_1000_events"] for c in cons]),
        "bench_process_cpu_pct_of_machine": summary([c["bench_process_cpu_pct_of_machine"] for c in cons]),
        "rebuild_events_per_s": summary([b["events_per_s"] for b in rebuilds]),
        "rebuild_seconds": summary([b["seconds"] for b in rebuilds]),
        "rebuild_replay_events_per_s": summary([b["replay_events_per_s"] for b in rebuilds]),
        "rebuild_replay_seconds": summary([b["replay_seconds"] for b in rebuilds]),
        "rebuild_swap_seconds": summary([b["timings"].get("swap", {}).get("seconds") for b in rebuilds]),
        "rebuild_fresh_seconds": summary(
            [b["timings"].get("fresh_database", {}).get("seconds") for b in rebuilds]
        ),
    }
    ok = {
        "drains": all(d["verify"].get("ok") for d in drains),
        "live_projection": all(r["live_verify"]["ok"] for r in runs),
        "rebuilds": all(b["verify_ok"] for b in rebuilds),
    }
    rebuild, p99 = out["rebuild_events_per_s"]["median"], out["lag_p99_s"]["median"]
    out["verified"] = ok
    out["verdicts"] = {
        "rebuild_events_per_s": None if rebuild is None else rebuild >= REBUILD_TARGET,
        "live_lag_p99_s": None if p99 is None else p99 < LAG_P99_TARGET,
    }
    return out


def parse_args(argv: list[str] | None = None) -> Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", default=os.environ.get("BENCH_DSN", common.DEFAULT_DSN), help="the server's DSN")
    p.add_argument(
        "--database", default="fleetlog_bench_analytics", help="dropped and recreated every repeat"
    )
    p.add_argument("--n", type=int, default=50_000, help="jobs submitted then drained (~4 events each)")
    p.add_argument("--procs", type=int, default=2, help="worker processes (as W2)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrency per worker process (as W2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rebuilds", type=int, default=1, help="timed rebuilds per repeat")
    p.add_argument("--baseline", action="store_true", help="also drain without the consumer, every repeat")
    p.add_argument("--min-events", type=int, default=200_000, help="stop unless the log holds this many")
    p.add_argument("--bulk-chunk", type=int, default=MAX_BATCH, help="jobs per submit_many call (<= 1000)")
    p.add_argument(
        "--worker-set", action="append", default=[], metavar="FIELD=VALUE", help="as bench_fleetlog.py"
    )
    p.add_argument(
        "--consumer-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a ConsumerConfig field (JSON value), e.g. linger_seconds=0.25; repeatable",
    )
    p.add_argument("--stats-dir", default=str(HERE / "results" / "tmp" / "analytics-worker-stats"))
    p.add_argument(
        "--chdb-parent", default=None, help="where the temporary chDB directory goes (default: TMPDIR)"
    )
    p.add_argument("--keep-chdb", action="store_true", help="leave the chDB directory behind")
    p.add_argument("--drain-timeout", type=float, default=900.0)
    p.add_argument("--catchup-timeout", type=float, default=300.0)
    p.add_argument(
        "--profile-rebuild", action="store_true", help="one more rebuild under cProfile (last repeat)"
    )
    p.add_argument(
        "--command", default=None, help="the command line that ran this (bench/run.sh passes its own)"
    )
    p.add_argument("--out", default=str(DEFAULT_OUT))
    a = p.parse_args(argv)
    if a.repeats < 1 or a.rebuilds < 1 or a.n < 1:
        p.error("--n, --repeats and --rebuilds must be >= 1")
    return a


def harness_args(a: Namespace) -> Namespace:
    """What bench_fleetlog.build() reads: its direct path with our sizes."""
    return Namespace(
        dsn=a.dsn,
        database=a.database,
        concurrency=a.concurrency,
        worker_set=a.worker_set,
        stats_dir=a.stats_dir,
        bulk_chunk=a.bulk_chunk,
        path="direct",
        http_servers=1,
        server_pool=None,
        serve_command=None,
        producers=1,
        procs=a.procs,
    )


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    h = harness_args(a)
    adapter = bf.build(h)  # creates the database if missing; h.dsn is now Fleetlog's database
    url = h.dsn
    cfg = dict(adapter.worker_cfg, dsn=url, concurrency=a.concurrency)
    chdb_dir = Path(tempfile.mkdtemp(prefix="fleetlog-bench-chdb-", dir=a.chdb_parent)).resolve()
    chdb_url = f"chdb://{chdb_dir}"
    keeper = open_client(AnalyticsSettings(url=chdb_url))  # one engine for the whole run
    argv_text = shlex.join([sys.executable, *sys.argv] if argv is None else ["bench_analytics.py", *argv])
    log(f"chDB at {chdb_dir}; PostgreSQL database {url}; N={a.n} procs={a.procs} conc={a.concurrency}")
    runs: list[dict[str, Any]] = []
    failed: str | None = None
    try:
        for r in range(a.repeats):
            runs.append(one_repeat(r, a, adapter, cfg=cfg, url=url, chdb_url=chdb_url, keeper=keeper))
    except (Exception, SystemExit) as exc:
        failed = f"{type(exc).__name__}: {exc}"
        log(f"FAILED: {failed}")
    finally:
        keeper.close()
        if not a.keep_chdb:
            shutil.rmtree(chdb_dir, ignore_errors=True)
    res: dict[str, Any] = {
        "peer": "fleetlog-analytics",
        "version": bf.fleetlog_version(),
        "bench": "analytics",
        "command": a.command or argv_text,
        "argv": argv_text,
        "args": vars(a),
        "machine": common.machine_info(url),
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "setup": bf.describe_setup(
            h, dict(bf.parse_set(s) for s in a.worker_set), adapter.worker_cfg["worker_config"]
        ),
        "consumer_config": consumer_config(a).model_dump(),
        "engine": "embedded chDB (a fresh temporary directory per run, a fresh database per repeat)",
        "lag_definition": "per event: wall time the batch's INSERTs returned - the event's timestamp",
        "lag_window": LAG_WINDOW,
        "targets": {"rebuild_events_per_s_at_least": REBUILD_TARGET, "live_lag_p99_s_below": LAG_P99_TARGET},
        "failed": failed,
        "repeats": runs,
    }
    if runs:
        res["summary"] = summarize_runs(runs)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str))
    log(f"wrote {out}")
    if runs:
        s = res["summary"]
        log(
            f"medians: rebuild {s['rebuild_events_per_s']['median']:,.0f} events/s "
            f"(target >= {REBUILD_TARGET:,.0f}: "
            f"{'met' if s['verdicts']['rebuild_events_per_s'] else 'MISSED'}); "
            f"live lag p99 {s['lag_p99_s']['median']:.3f} s (target < {LAG_P99_TARGET:g} s: "
            f"{'met' if s['verdicts']['live_lag_p99_s'] else 'MISSED'}); drain "
            f"{s['drain_jobs_per_s']['median']:,.0f} jobs/s with the consumer; verified {s['verified']}"
        )
        if not all(s["verified"].values()):
            failed = failed or f"verification failed: {s['verified']}"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
