#!/usr/bin/env python
"""Fleetlog on the peer benchmark workloads (W1 bulk + single enqueue, W2 drain, W3 latency).

    .venv/bin/python bench/bench_fleetlog.py [--dsn DSN] [--n 20000] [--procs 2] [--concurrency 4]
                                             [--repeats 3] [--duration 20] [--bulk-chunk 1000]
                                             [--worker-set KEY=VALUE ...] [--out FILE]
    .venv/bin/python bench/bench_fleetlog.py --n 500 --repeats 1 --duration 3     # fast self-check

The harness is the peers' own ``common.py`` (../shared/bench-peers, imported from there,
not copied): same arguments, same timing, same JSON. What Fleetlog runs:

  * path "direct": the coordinator in-process (``Fleet`` from ``adapters.bootstrap.build_app``
    over PostgreSQL), no HTTP.
  * path "http" (``--path http``): ``--http-servers`` ``fleetlog serve`` processes (default 1)
    on the same database, started after every database reset and stopped before the next
    (a random FLEETLOG_JWT_SECRET per run; one token from ``fleetlog token --tenant bench
    --role worker,submitter``). W1 bulk: POST /v1/jobs/batch with httpx, chunks of
    ``--bulk-chunk`` spread over ``--producers`` concurrent lanes (an AsyncClient each);
    W1 single: POST /v1/jobs per job, one after another (httpx.Client); W3 producer lanes:
    POST /v1/jobs, each lane on a kept-alive connection of its own, through ``RawLane``
    (bench/http_lane.py: a minimal HTTP/1.1 load generator, so that the producer does not
    take the cores from the server) or, with ``--http-producer httpx``, an
    httpx.AsyncClient each. Workers: the same ``Worker`` runtime over
    ``HttpPort`` (a ``FleetClient`` with pool concurrency + 4, claim streams, assembled
    as ``fleetlog worker --url`` does), worker i talking to server i % servers. The
    server processes' CPU is read from /proc and reported per job.
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
import atexit
import dataclasses
import json
import os
import secrets
import signal
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
from adapters.system import freeze_startup_objects  # noqa: E402
from adapters.worker import Worker, WorkerConfig  # noqa: E402
from adapters.worker.__main__ import EXTRA_CONNECTIONS  # noqa: E402
from adapters.worker.direct import DirectPort  # noqa: E402
from adapters.worker.http_port import DEFAULT_WAIT_SECONDS, HttpPort  # noqa: E402
from adapters.worker.registry import ANY_QUEUE, claim_queues  # noqa: E402
from bench.http_lane import RawLane  # noqa: E402
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
class _Counting:
    """Counts the port calls that cost transactions (mixed into the real ports)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.counts = {"claims": 0, "claimed": 0, "empty_claims": 0, "complete_calls": 0, "completed": 0}
        self._lock = threading.Lock()

    def claim(self, request: Any) -> Any:
        got = 0
        try:
            for job in super().claim(request):  # a list, or a claim stream's jobs as they come
                got += 1
                yield job
        finally:
            with self._lock:
                self.counts["claims"] += 1
                self.counts["claimed"] += got
                self.counts["empty_claims"] += not got

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def complete(self, completions: Sequence[Any]) -> Any:
        results = super().complete(completions)
        with self._lock:
            self.counts["complete_calls"] += 1
            self.counts["completed"] += len(completions)
        return results


class CountingPort(_Counting, DirectPort):
    """The real DirectPort with call counters."""


class CountingHttpPort(_Counting, HttpPort):
    """The real HttpPort (what ``fleetlog worker --url`` runs) with call counters (room
    requests of refilled claim streams too)."""

    def __init__(self, client: Any, **options: Any):
        super().__init__(client, **options)
        add_room = client.add_room

        def counted(stream_id: str, jobs: int) -> Any:
            self.count("room_calls")
            return add_room(stream_id, jobs)

        client.add_room = counted


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
        if cfg.get("urls"):
            return build_http(config)
        fleet = fleet_for(cfg["dsn"], min(200, config.concurrency + EXTRA_CONNECTIONS))
        identity = Identity.of(f"worker:{config.factory_id}", WORKER_IDENTITY_TENANT, Role.WORKER)
        port = CountingPort(fleet, identity, queues=claim_queues(HANDLERS, config.queues))
        fleet.ctx.store.ping()
        port.wait_for_work(0.0)  # opens the LISTEN connection before "go"
        seq = _current_seq(cfg["stats_dir"])
        return {"fleet": fleet, "port": port, "worker": Worker(port, HANDLERS, config), "seq": seq}

    def build_http(config: WorkerConfig) -> dict[str, Any]:
        # As adapters.worker.__main__.over_http assembles it (FleetClient pool, claim streams).
        from adapters.client import FleetClient
        from adapters.worker.__main__ import DEFAULT_REQUEST_TIMEOUT

        url = cfg["urls"][idx % len(cfg["urls"])]
        client = FleetClient(
            url,
            cfg["token"],
            timeout=DEFAULT_REQUEST_TIMEOUT,
            max_connections=min(200, config.concurrency + EXTRA_CONNECTIONS),
        )
        port = CountingHttpPort(client, wait_seconds=DEFAULT_WAIT_SECONDS, refill=cfg.get("refill", True))
        client.readyz()  # opens a connection before "go"
        seq = _current_seq(cfg["stats_dir"])
        return {"fleet": client, "port": port, "worker": Worker(port, HANDLERS, config), "seq": seq}

    async def setup():
        built = await asyncio.to_thread(build)
        freeze_startup_objects()  # as `fleetlog worker` does before it starts
        return built

    async def run(ctx):
        stats = await asyncio.to_thread(ctx["worker"].run_until_stopped)
        out = {**ctx["port"].counts, **dataclasses.asdict(stats)}
        Path(cfg["stats_dir"], f"{ctx['seq']:04d}-{idx}.json").write_text(json.dumps(out))
        print(f"[fleetlog worker {idx}] {json.dumps(out)}", file=sys.stderr, flush=True)

    async def request_stop(ctx, task):
        ctx["worker"].stop()
        await task

    async def teardown(ctx):
        if hasattr(ctx["port"], "close"):
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
    if total.get("room_calls"):
        total["jobs_per_room_call"] = round(total["claimed"] / total["room_calls"], 2)
    return total


# --------------------------------------------------------------------------- HTTP path
def fleetlog_cli() -> list[str]:
    exe = Path(sys.executable).with_name("fleetlog")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "adapters.cli"]


def proc_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of a process (and its waited-for children) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Servers:
    """``fleetlog serve`` processes on one database: (re)started after every reset."""

    def __init__(
        self,
        count: int,
        url: str,
        env: dict[str, str],
        *,
        pool: int | None,
        log_dir: Path,
        command: list[str],
    ):
        self.count, self.url, self.env, self.pool, self.log_dir = count, url, env, pool, log_dir
        self.command = command
        self.procs: list[subprocess.Popen[str]] = []
        self.urls: list[str] = []
        self.cpu: list[float] = []
        """CPU seconds of every server generation, summed over its processes, in order."""
        self._mark: float | None = None
        atexit.register(self.stop)

    def start(self) -> list[str]:
        self.stop()
        self.urls = []
        for i in range(self.count):
            # --no-analytics: the HTTP path is compared with the direct path, which runs no
            # ClickHouse consumer; the consumer's own cost is the `analytics` step's subject.
            cmd = [
                *self.command,
                *("--port", "0", "--database-url", self.url, "--log-level", "warning", "--no-analytics"),
            ]
            if self.pool:
                cmd += ["--pool-size", str(self.pool)]
            err = open(self.log_dir / f"serve-{i}.log", "a")  # noqa: SIM115
            proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=err, text=True)
            err.close()
            self.procs.append(proc)
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.startswith("fleetlog listening on "):
                self.stop()
                raise RuntimeError(
                    f"fleetlog serve did not start ({line!r}; see {self.log_dir}/serve-{i}.log)"
                )
            self.urls.append(line.split()[-1])
        return self.urls

    def cpu_now(self) -> float:
        return sum(proc_cpu_s(p.pid) for p in self.procs)

    def mark(self) -> None:
        self._mark = self.cpu_now()

    def since_mark(self) -> float | None:
        return None if self._mark is None else self.cpu_now() - self._mark

    def stop(self) -> None:
        if not self.procs:
            return
        total = self.cpu_now()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.cpu.append(total)
        self.procs, self._mark = [], None


def mint_token(url: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [
            *fleetlog_cli(),
            "token",
            "--tenant",
            TENANT,
            "--role",
            "worker,submitter",
            "--database-url",
            url,
            "--subject",
            "bench",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"fleetlog token failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _check_batch(response: Any) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"POST /v1/jobs/batch: {response.status_code} {response.text[:300]}")
    bad = [r for r in response.json()["results"] if not r["ok"]]
    if bad:
        raise RuntimeError(f"POST /v1/jobs/batch refused items: {bad[:3]}")


def _check_submit(response: Any) -> None:
    if response.status_code not in (200, 201):
        raise RuntimeError(f"POST /v1/jobs: {response.status_code} {response.text[:300]}")


class RawProducer:
    """A W3 producer lane over HTTP: a ``RawLane`` (one kept-alive connection)."""

    def __init__(self, url: str, token: str) -> None:
        self.lane = RawLane(url, token)

    async def open(self) -> RawProducer:
        await self.lane.open()  # connected before the clock
        return self

    async def one(self, i: int, t: float) -> None:
        status, body = await self.lane.post_json("/v1/jobs", spec(i, t))
        if status not in (200, 201):
            raise RuntimeError(f"POST /v1/jobs: {status} {body[:300]!r}")

    async def close(self) -> None:
        await self.lane.close()


class HttpProducer:
    """A W3 producer lane over HTTP: an httpx.AsyncClient of its own (one connection)."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
            limits=httpx.Limits(max_connections=1),
        )

    async def open(self) -> HttpProducer:
        (await self.client.get("/healthz")).raise_for_status()  # connected before the clock
        return self

    async def one(self, i: int, t: float) -> None:
        _check_submit(await self.client.post("/v1/jobs", json=spec(i, t)))

    async def close(self) -> None:
        await self.client.aclose()


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
    if args.http_servers < 1:
        raise SystemExit("--http-servers must be >= 1")
    if "bench" not in args.database:
        raise SystemExit(f"--database {args.database!r}: refusing to drop a database without 'bench' in it")
    if not 1 <= args.bulk_chunk <= MAX_BATCH:
        raise SystemExit(f"--bulk-chunk must be 1..{MAX_BATCH} (Fleet.submit_many's limit)")


def build(args) -> common.Adapter:  # noqa: PLR0915  (one closure per harness hook, both paths)
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

    http = args.path == "http"
    servers: Servers | None = None
    token = ""
    server_windows: dict[int, float] = {}
    """W3: server CPU seconds from the first producer lane to the servers' stop, per repeat."""
    if http:
        env = {**os.environ, "FLEETLOG_JWT_SECRET": secrets.token_urlsafe(48)}
        env.pop("DATABASE_URL", None)
        command = args.serve_command.split() if args.serve_command else [*fleetlog_cli(), "serve"]
        servers = Servers(
            args.http_servers, fleet_url, env, pool=args.server_pool, log_dir=stats_dir, command=command
        )
        token = mint_token(fleet_url, env)

    def stop_servers() -> None:
        if servers is None:
            return
        window = servers.since_mark()
        servers.stop()
        if window is not None and seq[0] in pending:
            server_windows[seq[0]] = window

    def reset() -> None:
        stop_servers()
        seq[0] += 1
        pending[seq[0]] = None
        Path(stats_dir, "current").write_text(str(seq[0]))
        recreate_database(server_url, args.database, fleet_url)
        if servers is not None:
            cfg_urls[:] = servers.start()

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

    cfg_urls: list[str] = []
    auth = {"Authorization": f"Bearer {token}"}

    async def http_enqueue_bulk(n: int) -> float:
        import httpx

        lanes = max(1, args.producers)
        clients = [
            httpx.AsyncClient(base_url=cfg_urls[k % len(cfg_urls)], headers=auth, timeout=120.0)
            for k in range(lanes)
        ]
        try:
            for c in clients:
                (await c.get("/healthz")).raise_for_status()
            chunks = [range(s, min(n, s + args.bulk_chunk)) for s in range(0, n, args.bulk_chunk)]

            async def lane(k: int) -> None:
                for chunk in chunks[k::lanes]:
                    body = {"jobs": [spec(i) for i in chunk]}
                    _check_batch(await clients[k].post("/v1/jobs/batch", json=body))

            t0 = time.perf_counter()
            await asyncio.gather(*(lane(k) for k in range(lanes)))
            dt = time.perf_counter() - t0
        finally:
            for c in clients:
                await c.aclose()
        assert servers is not None
        servers.mark()  # W2: the drain's server CPU is counted from here to verify()
        return dt

    async def http_enqueue_single(n: int) -> float:
        import httpx

        with httpx.Client(base_url=cfg_urls[0], headers=auth, timeout=30.0) as c:
            c.get("/healthz").raise_for_status()
            t0 = time.perf_counter()
            for i in range(n):
                _check_submit(c.post("/v1/jobs", json=spec(i)))
            return time.perf_counter() - t0

    lane_no = [0]

    async def http_make_producer() -> RawProducer | HttpProducer:
        assert servers is not None
        servers.mark()  # W3: server CPU from here to the servers' stop
        lane_no[0] += 1
        lane = RawProducer if args.http_producer == "raw" else HttpProducer
        return await lane(cfg_urls[lane_no[0] % len(cfg_urls)], token).open()

    def verify(n: int) -> dict[str, Any]:
        out = verify_db(fleet_url, n)
        if servers is not None:
            cpu_s = servers.since_mark()
            if cpu_s is not None:
                out["server_cpu_s"] = round(cpu_s, 2)
                out["server_cpu_ms_per_job"] = round(cpu_s * 1e3 / n, 3)
        stats = _collect_stats(str(stats_dir), seq[0])
        pending.pop(seq[0], None)
        if stats is not None:
            out["workers"] = stats
        return out

    def leftover_stats() -> list[dict[str, Any] | None]:
        """Worker counters of the repeats verify() did not see (W3), in order."""
        stop_servers()
        out = []
        for s in sorted(pending):
            stats = _collect_stats(str(stats_dir), s)
            if stats is not None and s in server_windows:
                stats["server_cpu_s"] = round(server_windows[s], 2)
            out.append(stats)
        return out

    shown = {k: v for k, v in config.model_dump().items() if k not in ("factory_id", "concurrency")}
    adapter = common.Adapter(
        name="fleetlog",
        version=fleetlog_version(),
        setup_desc=describe_setup(args, overrides, shown),
        reset=reset,
        enqueue_bulk=http_enqueue_bulk if http else enqueue_bulk,
        enqueue_single=http_enqueue_single if http else enqueue_single,
        make_producer=http_make_producer if http else make_producer,
        worker_child=worker_child,
        done_sql="select count(*) from fleet_jobs where state = 'succeeded'",
        todo_sql="select count(*) from fleet_jobs where state = 'queued'",
        verify=verify,
        analyze_tables=["fleet_queue", "fleet_jobs", "fleetlog_events"],
        worker_cfg={
            "worker_set": overrides,
            "stats_dir": str(stats_dir),
            "worker_config": shown,
            "urls": cfg_urls,
            "token": token,
            "refill": not args.http_no_refill,
        },
        bulk_desc=(
            f"POST /v1/jobs/batch (httpx), chunks of {args.bulk_chunk} (one transaction each), "
            f"{max(1, args.producers)} concurrent producer connections"
            if http
            else f"Fleet.submit_many, chunks of {args.bulk_chunk} (one transaction each)"
        ),
        single_desc=(
            "POST /v1/jobs per job (httpx.Client, one connection, own transaction)"
            if http
            else "Fleet.submit per job (own transaction)"
        ),
    )
    adapter.leftover_stats = leftover_stats  # type: ignore[attr-defined]
    return adapter


def describe_setup(args, overrides: dict[str, Any], shown: dict[str, Any]) -> str:
    changed = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
    port = "HttpPort" if args.path == "http" else "DirectPort"
    if args.path == "http":
        where = (
            f"HTTP path: {args.http_servers} `{args.serve_command or 'fleetlog serve'}` process(es) (pool "
            f"{args.server_pool or 'default'}), FleetClient pool "
            f"{min(200, args.concurrency + EXTRA_CONNECTIONS)}/proc, claim streams "
            f"(wait {DEFAULT_WAIT_SECONDS:g}s); W3 producer lanes: "
            + ("RawLane (bench/http_lane.py)" if args.http_producer == "raw" else "httpx.AsyncClient")
        )
    else:
        where = (
            f"psycopg pool {min(200, args.concurrency + EXTRA_CONNECTIONS)}/proc + 1 LISTEN conn, "
            "direct path (in-process Fleet)"
        )
    return (
        f"{args.procs} procs x Worker({port}, concurrency={args.concurrency}, WorkerConfig {changed}: "
        f"completion_flush_ms={shown['completion_flush_ms']:g}, completion_batch_max="
        f"{shown['completion_batch_max']}, claim_cooldown={shown['claim_cooldown_seconds']:g}s, "
        f"idle_poll={shown['idle_poll_seconds']:g}s), handlers {{'*': noop}}, "
        f"{'tenant bench (the token)' if args.path == 'http' else 'all tenants'}, {where}"
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
    p.add_argument(
        "--path",
        choices=["direct", "http"],
        default="direct",
        help="direct: in-process Fleet; http: through `fleetlog serve` (HttpPort workers, httpx producers)",
    )
    p.add_argument("--http-servers", type=int, default=1, help="--path http: `fleetlog serve` processes")
    p.add_argument(
        "--http-producer",
        choices=["raw", "httpx"],
        default="raw",
        help="--path http, W3 producer lanes: RawLane (a minimal HTTP/1.1 load generator) or httpx",
    )
    p.add_argument("--server-pool", type=int, default=None, help="--path http: serve --pool-size")
    p.add_argument(
        "--serve-command",
        default=None,
        help="--path http, diagnostics: the command that runs `fleetlog serve` (default: the venv's)",
    )
    p.add_argument("--database", default="fleetlog_bench", help="dropped and recreated every repeat")
    p.add_argument("--bulk-chunk", type=int, default=MAX_BATCH, help="jobs per submit_many call (<= 1000)")
    p.add_argument(
        "--worker-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a WorkerConfig field (JSON value), e.g. completion_flush_ms=5; repeatable",
    )
    p.add_argument(
        "--http-no-refill",
        action="store_true",
        help="--path http: workers end each claim stream after the jobs it was opened for "
        "(`fleetlog worker --no-refill`) instead of giving it room as slots free",
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
