#!/usr/bin/env python
"""Fleetlog on the peer benchmark workloads (W1 bulk + single enqueue, W2 drain, W3 latency).

    .venv/bin/python bench/bench_fleetlog.py [--dsn DSN] [--n 20000] [--procs 2] [--concurrency 4]
                                             [--repeats 3] [--duration 20] [--bulk-chunk 1000]
                                             [--worker-set KEY=VALUE ...] [--out FILE]
    .venv/bin/python bench/bench_fleetlog.py --n 500 --repeats 1 --duration 3     # fast self-check

The harness is the peers' own ``common.py`` (../shared/bench-peers, imported from there,
not copied): same arguments, same timing, same JSON. What Fleetlog runs:

  * path "direct": the coordinator in-process (``Fleet`` from ``adapters.bootstrap.build_app``
    over PostgreSQL), no HTTP. (``--path http`` is reserved for the HTTP transport.)
  * a dedicated database (``--database``, default fleetlog_bench) on the server of
    ``--dsn``: dropped, recreated and migrated (``adapters.bootstrap.migrate``) before every
    repeat, as the peers drop and recreate their schema. The harness's own queries (done
    count, ANALYZE) run against that database.
  * W1 bulk: ``Fleet.submit_many`` in chunks of ``--bulk-chunk`` (default and maximum 1000
    per call = per transaction). W1 single: ``Fleet.submit`` per job (own transaction).
    Jobs: queue "default", payload {"n": i}, tenant "bench". The Fleet (and its pool) is
    built before the clock starts.
  * W3 producer: one Fleet per producer lane; ``Fleet.submit`` with {"n": i, "t": t} runs
    in a thread of the lane's own (the API is synchronous; the harness's lanes are asyncio
    tasks), so the hop into the thread is inside the measured latency.
  * workers: ``--procs`` spawned processes, each running the real ``Worker`` runtime
    (claim loop, handler threads, renewer, batched completer, heartbeat) over ``DirectPort``,
    assembled as ``python -m adapters.worker`` does (pool = concurrency + 4, LISTEN
    connection of its own, factory id bench-<i>, a fleet-wide worker identity), with
    ``WorkerConfig(concurrency=--concurrency)`` and otherwise the defaults unless
    ``--worker-set`` overrides a field. Handler registry {"*": noop}; the no-op handler calls
    ``common.record(job.payload.get("t"))`` first thing. The port is DirectPort with call
    counters (claims, claimed jobs, empty claims, completion batches) for the report.
  * done state: fleet_jobs.state = 'succeeded' (the read model written in the same
    transaction as the JobSucceeded event). verify: from the event log, every submitted job
    has exactly one JobSucceeded event, and nothing is left queued or leased.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = Path(os.environ.get("BENCH_PEERS_DIR", ROOT.parent / "shared" / "bench-peers")).resolve()
if str(PEERS) not in sys.path:
    sys.path.insert(0, str(PEERS))
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import common  # noqa: E402  (the peers' harness, from PEERS)
import psycopg  # noqa: E402
from eventsourcing.utils import get_topic  # noqa: E402
from psycopg import sql  # noqa: E402

from adapters.bootstrap import Settings, build_app, migrate  # noqa: E402
from adapters.worker import Worker, WorkerConfig  # noqa: E402
from adapters.worker.__main__ import EXTRA_CONNECTIONS  # noqa: E402
from adapters.worker.direct import DirectPort  # noqa: E402
from adapters.worker.registry import ANY_QUEUE, claim_queues  # noqa: E402
from coordinator.identity import Identity, Role  # noqa: E402
from coordinator.submission import MAX_BATCH  # noqa: E402
from domain.job.events import JobSubmitted, JobSucceeded, LeaseGranted  # noqa: E402

TENANT = "bench"
SUBMITTER = Identity.of("bench-producer", TENANT, Role.SUBMITTER)
WORKER_IDENTITY_TENANT: str | None = None
"""Workers serve every tenant (``fleetlog worker --all-tenants``)."""
PRODUCER_POOL = 2
"""Pool size of a submitting Fleet (one thread uses it; the library keeps min = size)."""
DEFAULT_RESULTS = HERE / "results" / "tmp"
"""Where a run without --out writes (run.sh always passes --out)."""


# --------------------------------------------------------------------------- databases
def with_database(url: str, database: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"--dsn must be a postgresql:// URL (Fleetlog takes URLs), got {url!r}")
    return urlunparse(parsed._replace(path="/" + database))


def admin_connect(url: str) -> psycopg.Connection[Any]:
    """A connection for DROP/CREATE DATABASE: the --dsn database (the peers' `bench`), or
    the server's `postgres` database if that one does not exist yet."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError:
        return psycopg.connect(with_database(url, "postgres"), autocommit=True, connect_timeout=10)


def recreate_database(server_url: str, database: str, fleet_url: str) -> None:
    with admin_connect(server_url) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    migrate(Settings(database_url=fleet_url))


def ensure_database(server_url: str, database: str, fleet_url: str) -> None:
    with admin_connect(server_url) as c:
        found = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    if not found:
        recreate_database(server_url, database, fleet_url)


def fleet_for(url: str, pool_size: int) -> Any:
    return build_app(Settings(database_url=url, pool_size=pool_size, migrate=False))


# --------------------------------------------------------------------------- worker side
class CountingPort(DirectPort):
    """The real DirectPort; counts the calls that cost transactions."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.counts = {"claims": 0, "claimed": 0, "empty_claims": 0, "complete_calls": 0, "completed": 0}
        self._lock = threading.Lock()

    def claim(self, request: Any) -> Any:
        jobs = super().claim(request)
        with self._lock:
            self.counts["claims"] += 1
            self.counts["claimed"] += len(jobs)
            self.counts["empty_claims"] += not jobs
        return jobs

    def complete(self, completions: Sequence[Any]) -> Any:
        results = super().complete(completions)
        with self._lock:
            self.counts["complete_calls"] += 1
            self.counts["completed"] += len(completions)
        return results


_RECORD_LOCK = threading.Lock()


def noop(job: Any, ctx: Any) -> None:
    # common.record does HANDLED[0] += 1, which is not atomic across handler threads.
    with _RECORD_LOCK:
        common.record(job.payload.get("t"))


HANDLERS = {ANY_QUEUE: noop}


def worker_config(idx: int, concurrency: int, overrides: dict[str, Any]) -> WorkerConfig:
    return WorkerConfig.model_validate(
        {**overrides, "factory_id": f"bench-{idx}", "concurrency": concurrency}
    )


def worker_child(idx, cfg, ready, go, stop, lat_path):  # noqa: PLR0917  (the harness's signature)
    def build() -> dict[str, Any]:
        config = worker_config(idx, cfg["concurrency"], cfg["worker_set"])
        fleet = fleet_for(cfg["dsn"], min(200, config.concurrency + EXTRA_CONNECTIONS))
        identity = Identity.of(f"worker:{config.factory_id}", WORKER_IDENTITY_TENANT, Role.WORKER)
        port = CountingPort(fleet, identity, queues=claim_queues(HANDLERS, config.queues))
        fleet.ctx.store.ping()
        port.wait_for_work(0.0)  # opens the LISTEN connection before "go"
        seq = _current_seq(cfg["stats_dir"])
        return {"fleet": fleet, "port": port, "worker": Worker(port, HANDLERS, config), "seq": seq}

    async def setup():
        return await asyncio.to_thread(build)

    async def run(ctx):
        stats = await asyncio.to_thread(ctx["worker"].run_until_stopped)
        out = {**ctx["port"].counts, **dataclasses.asdict(stats)}
        Path(cfg["stats_dir"], f"{ctx['seq']:04d}-{idx}.json").write_text(json.dumps(out))
        print(f"[fleetlog worker {idx}] {json.dumps(out)}", file=sys.stderr, flush=True)

    async def request_stop(ctx, task):
        ctx["worker"].stop()
        await task

    async def teardown(ctx):
        ctx["port"].close()
        ctx["fleet"].close()

    asyncio.run(common.child_loop(setup, run, request_stop, teardown, ready, go, stop, lat_path))


def _current_seq(stats_dir: str) -> int:
    try:
        return int(Path(stats_dir, "current").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _collect_stats(stats_dir: str, seq: int) -> dict[str, Any] | None:
    files = sorted(Path(stats_dir).glob(f"{seq:04d}-*.json"))
    if not files:
        return None
    per = [json.loads(f.read_text()) for f in files]
    total = {k: sum(p[k] for p in per) for k in per[0] if k != "largest_flush"}
    total["largest_flush"] = max(p["largest_flush"] for p in per)
    total["procs_reporting"] = len(per)
    if total["claims"]:
        total["jobs_per_claim"] = round(total["claimed"] / total["claims"], 2)
    if total["complete_calls"]:
        total["jobs_per_complete"] = round(total["completed"] / total["complete_calls"], 2)
    return total


# --------------------------------------------------------------------------- the adapter
def spec(i: int, t: float | None = None) -> dict[str, Any]:
    return {"payload": {"n": i} if t is None else {"n": i, "t": t}}


class Producer:
    """A W3 producer lane: a Fleet of its own, called from a thread of its own."""

    def __init__(self, url: str) -> None:
        self.fleet = fleet_for(url, PRODUCER_POOL)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="producer")

    async def one(self, i: int, t: float) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self.thread, self.fleet.submit, SUBMITTER, spec(i, t)
        )

    async def close(self) -> None:
        self.thread.shutdown()
        self.fleet.close()


def check_args(args) -> None:
    if args.path != "direct":
        raise SystemExit(f"--path {args.path}: not implemented yet (only 'direct')")
    if "bench" not in args.database:
        raise SystemExit(f"--database {args.database!r}: refusing to drop a database without 'bench' in it")
    if not 1 <= args.bulk_chunk <= MAX_BATCH:
        raise SystemExit(f"--bulk-chunk must be 1..{MAX_BATCH} (Fleet.submit_many's limit)")


def build(args) -> common.Adapter:
    check_args(args)
    server_url = args.dsn
    fleet_url = with_database(server_url, args.database)
    overrides = dict(parse_set(s) for s in args.worker_set)
    config = worker_config(0, args.concurrency, overrides)  # validates --worker-set now
    stats_dir = Path(args.stats_dir or DEFAULT_RESULTS / "worker-stats").resolve()
    stats_dir.mkdir(parents=True, exist_ok=True)
    for f in stats_dir.glob("*.json"):
        f.unlink()
    seq = [0]
    pending: dict[int, None] = {}

    ensure_database(server_url, args.database, fleet_url)
    # The harness's own queries (todo/done counts, ANALYZE, CHECKPOINT) go to Fleetlog's database.
    args.server_dsn, args.dsn = server_url, fleet_url

    def reset() -> None:
        seq[0] += 1
        pending[seq[0]] = None
        Path(stats_dir, "current").write_text(str(seq[0]))
        recreate_database(server_url, args.database, fleet_url)

    async def enqueue_bulk(n: int) -> float:
        fleet = fleet_for(fleet_url, PRODUCER_POOL)
        try:
            t0 = time.perf_counter()
            for s in range(0, n, args.bulk_chunk):
                results = fleet.submit_many(
                    SUBMITTER, [spec(i) for i in range(s, min(n, s + args.bulk_chunk))]
                )
                if not all(r.ok for r in results):
                    raise RuntimeError(f"submit_many refused items: {[r for r in results if not r.ok][:3]}")
            return time.perf_counter() - t0
        finally:
            fleet.close()

    async def enqueue_single(n: int) -> float:
        fleet = fleet_for(fleet_url, PRODUCER_POOL)
        try:
            t0 = time.perf_counter()
            for i in range(n):
                fleet.submit(SUBMITTER, spec(i))
            return time.perf_counter() - t0
        finally:
            fleet.close()

    async def make_producer() -> Producer:
        return await asyncio.to_thread(Producer, fleet_url)

    def verify(n: int) -> dict[str, Any]:
        out = verify_db(fleet_url, n)
        stats = _collect_stats(str(stats_dir), seq[0])
        pending.pop(seq[0], None)
        if stats is not None:
            out["workers"] = stats
        return out

    def leftover_stats() -> list[dict[str, Any] | None]:
        """Worker counters of the repeats verify() did not see (W3), in order."""
        return [_collect_stats(str(stats_dir), s) for s in sorted(pending)]

    shown = {k: v for k, v in config.model_dump().items() if k not in ("factory_id", "concurrency")}
    adapter = common.Adapter(
        name="fleetlog",
        version=fleetlog_version(),
        setup_desc=describe_setup(args, overrides, shown),
        reset=reset,
        enqueue_bulk=enqueue_bulk,
        enqueue_single=enqueue_single,
        make_producer=make_producer,
        worker_child=worker_child,
        done_sql="select count(*) from fleet_jobs where state = 'succeeded'",
        todo_sql="select count(*) from fleet_jobs where state = 'queued'",
        verify=verify,
        analyze_tables=["fleet_queue", "fleet_jobs", "fleetlog_events"],
        worker_cfg={"worker_set": overrides, "stats_dir": str(stats_dir), "worker_config": shown},
        bulk_desc=f"Fleet.submit_many, chunks of {args.bulk_chunk} (one transaction each)",
        single_desc="Fleet.submit per job (own transaction)",
    )
    adapter.leftover_stats = leftover_stats  # type: ignore[attr-defined]
    return adapter


def describe_setup(args, overrides: dict[str, Any], shown: dict[str, Any]) -> str:
    changed = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
    return (
        f"{args.procs} procs x Worker(DirectPort, concurrency={args.concurrency}, WorkerConfig {changed}: "
        f"completion_flush_ms={shown['completion_flush_ms']:g}, completion_batch_max="
        f"{shown['completion_batch_max']}, claim_cooldown={shown['claim_cooldown_seconds']:g}s, "
        f"idle_poll={shown['idle_poll_seconds']:g}s), handlers {{'*': noop}}, all tenants, "
        f"psycopg pool {min(200, args.concurrency + EXTRA_CONNECTIONS)}/proc + 1 LISTEN conn, "
        f"direct path (in-process Fleet)"
    )


def verify_db(url: str, n: int) -> dict[str, Any]:
    """Every job succeeded exactly once according to the event log; nothing left."""
    submitted, succeeded, granted = get_topic(JobSubmitted), get_topic(JobSucceeded), get_topic(LeaseGranted)
    with psycopg.connect(url, autocommit=True) as c:
        jobs, once, never, twice, grants, events = c.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE s = 1), count(*) FILTER (WHERE s = 0),
                   count(*) FILTER (WHERE s > 1), coalesce(sum(g), 0), coalesce(sum(e), 0)
            FROM (SELECT originator_id,
                         count(*) FILTER (WHERE topic = %(succeeded)s) AS s,
                         count(*) FILTER (WHERE topic = %(granted)s) AS g,
                         count(*) AS e
                  FROM fleetlog_events GROUP BY originator_id
                  HAVING bool_or(topic = %(submitted)s)) AS per_job
            """,
            {"submitted": submitted, "succeeded": succeeded, "granted": granted},
        ).fetchone()
        states = dict(c.execute("SELECT state, count(*) FROM fleet_jobs GROUP BY 1").fetchall())
        queue_left = c.execute("SELECT count(*) FROM fleet_queue").fetchone()[0]
        leases_left = c.execute("SELECT count(*) FROM fleet_leases").fetchone()[0]
    ok = (
        jobs == n
        and once == n
        and never == 0
        and twice == 0
        and states == {"succeeded": n}
        and queue_left == 0
        and leases_left == 0
    )
    return {
        "ok": ok,
        "jobs_in_log": jobs,
        "succeeded_once": once,
        "never_succeeded": never,
        "succeeded_more_than_once": twice,
        "lease_grants": int(grants),
        "job_events_per_job": round(int(events) / max(1, jobs), 2),
        "fleet_jobs_states": states,
        "left_in_queue": queue_left,
        "leases_left": leases_left,
    }


def fleetlog_version() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return version("fleetlog") + (f" ({commit})" if commit else "")


def parse_set(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or key not in WorkerConfig.model_fields or key in ("factory_id", "concurrency"):
        raise SystemExit(f"--worker-set wants FIELD=VALUE with a WorkerConfig field, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def attach_w3_worker_stats(out: Path, adapter: common.Adapter) -> None:
    leftover = adapter.leftover_stats()  # type: ignore[attr-defined]
    data = json.loads(out.read_text())
    w3 = data["workloads"].get("w3_latency")
    with_workers = [s for s in leftover if s is not None]
    if w3 is None or not with_workers:
        return
    for run, stats in zip(w3["runs"], with_workers, strict=False):
        run["workers"] = stats
    out.write_text(json.dumps(data, indent=2))


def main() -> None:
    p = common.base_parser(__doc__.splitlines()[0])
    p.set_defaults(n_single=None)
    p.add_argument("--path", choices=["direct", "http"], default="direct", help="http: a later issue")
    p.add_argument("--database", default="fleetlog_bench", help="dropped and recreated every repeat")
    p.add_argument("--bulk-chunk", type=int, default=MAX_BATCH, help="jobs per submit_many call (<= 1000)")
    p.add_argument(
        "--worker-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a WorkerConfig field (JSON value), e.g. completion_flush_ms=5; repeatable",
    )
    p.add_argument("--stats-dir", default=None, help="scratch dir for per-process worker counters")
    a = p.parse_args()
    if a.n_single is None:
        a.n_single = min(2000, a.n)
    if a.out is None:
        a.out = str(DEFAULT_RESULTS / f"fleetlog{('-' + a.tag) if a.tag else ''}.json")
    adapter = build(a)
    common.run_all(adapter, a)
    attach_w3_worker_stats(Path(a.out), adapter)


if __name__ == "__main__":
    main()
