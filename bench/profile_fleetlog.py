#!/usr/bin/env python
"""Where Fleetlog's client CPU goes on the benchmark's hot paths (a diagnostic, not a benchmark).

    .venv/bin/python bench/profile_fleetlog.py [--jobs 1000] [--claim 4] [--top 12]

Single thread, its own database (fleetlog_bench_profile, recreated): cProfile around
(1) Fleet.submit one at a time, (2) Fleet.submit_many in one call, (3) the worker's
transactions without the runtime's threads: claim(max_jobs=--claim, start=True) then
complete() of what was claimed, until the queue is empty. For each: wall and CPU per job,
CPU by package (own CPU time), and the top functions by own CPU time. cProfile roughly doubles
the CPU of Python-heavy code: read the shares, not the absolute numbers (--no-profile
gives the plain wall and CPU per job).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_fleetlog import SUBMITTER, fleet_for, recreate_database, with_database  # noqa: E402

from coordinator.claiming import ClaimRequest  # noqa: E402
from coordinator.identity import Identity, Role  # noqa: E402
from coordinator.reporting import Completion  # noqa: E402

WORKER = Identity.of("worker:profile", None, Role.WORKER)
PACKAGES = ("pydantic", "eventsourcing", "psycopg", "psycopg_pool", "tenacity", "uuid6")
OWN = ("domain", "coordinator", "adapters", "projections")


def package_of(filename: str) -> str:
    parts = Path(filename).parts
    for name in PACKAGES:
        if name in parts or f"{name}_core" in parts:
            return name
    for name in OWN:
        if name in parts and "site-packages" not in parts:
            return f"fleetlog:{name}"
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    return "stdlib/other"


def report(title: str, measured: tuple[cProfile.Profile, float, float], jobs: int, top: int) -> None:
    prof, wall, cpu = measured
    per_job = f"wall {1e3 * wall / jobs:.2f} ms/job, CPU {1e3 * cpu / jobs:.2f} ms/job"
    if not PROFILE[0]:
        print(f"== {title}: {jobs} jobs, {per_job}")
        return
    stats = pstats.Stats(prof)
    by_pkg: dict[str, float] = defaultdict(float)
    total = 0.0
    rows = []
    statements = commits = 0
    for (filename, line, func), (_cc, nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_pkg[package_of(filename)] += tt
        total += tt
        rows.append((tt, f"{Path(filename).name}:{line} {func}"))
        if filename.endswith(("psycopg/cursor.py", "psycopg/_copy.py")) and func in ("execute", "__enter__"):
            statements += nc
        if filename.endswith("psycopg/transaction.py") and func == "__exit__":
            commits += nc
    print(
        f"\n== {title}: {jobs} jobs, {per_job} (profiled); "
        f"{statements / jobs:.2f} statements and {commits / jobs:.2f} transactions per job"
    )
    print(
        "   own time by package: "
        + ", ".join(
            f"{k} {100 * v / total:.0f}%"
            for k, v in sorted(by_pkg.items(), key=lambda kv: -kv[1])
            if v / total >= 0.01
        )
    )
    for tt, name in sorted(rows, reverse=True)[:top]:
        print(f"   {100 * tt / total:5.1f}%  {name}")


PROFILE = [True]


def profiled(fn):
    prof = cProfile.Profile(time.process_time)  # CPU, not wall: waits on the server do not count
    w0, c0 = time.perf_counter(), time.process_time()
    if PROFILE[0]:
        prof.enable()
    result = fn()
    prof.disable()
    return prof, time.perf_counter() - w0, time.process_time() - c0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/bench")
    ap.add_argument("--database", default="fleetlog_bench_profile")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--claim", type=int, default=4, help="max_jobs per claim (a worker's free slots)")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--no-profile", action="store_true", help="only wall and CPU per job, without cProfile")
    a = ap.parse_args()
    PROFILE[0] = not a.no_profile
    url = with_database(a.dsn, a.database)
    recreate_database(a.dsn, a.database, url)
    fleet = fleet_for(url, 2)
    try:
        fleet.submit(SUBMITTER, {"payload": {"n": -1}})  # warm-up (imports, pool, caches)

        def singles():
            for i in range(a.jobs):
                fleet.submit(SUBMITTER, {"payload": {"n": i}})

        report("Fleet.submit, one per call", profiled(singles)[:3], a.jobs, a.top)

        n_bulk = min(1000, a.jobs)
        prof, wall, cpu, _ = profiled(
            lambda: fleet.submit_many(SUBMITTER, [{"payload": {"n": i}} for i in range(n_bulk)])
        )
        report("Fleet.submit_many, one call", (prof, wall, cpu), n_bulk, a.top)

        def drain() -> int:
            done = 0
            request = ClaimRequest(factory_id="profile", max_jobs=a.claim, start=True)
            while claimed := fleet.claim(WORKER, request):
                fleet.complete(
                    WORKER,
                    [Completion(job_id=c.job.id, epoch=c.epoch, outcome="succeeded") for c in claimed],
                )
                done += len(claimed)
            return done

        prof, wall, cpu, done = profiled(drain)
        report(f"claim(max_jobs={a.claim}, start=True) + complete(batch)", (prof, wall, cpu), done, a.top)
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
