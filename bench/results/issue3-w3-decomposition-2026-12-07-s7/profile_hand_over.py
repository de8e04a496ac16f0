"""CPU of one hand-over's unit of work committed from an event loop (``PgLoopCommits.transact``),
no HTTP, one at a time: plain, then under cProfile.

    .venv/bin/python bench/results/issue3-w3-decomposition-2026-12-07-s7/profile_hand_over.py [N]
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
bench = importlib.import_module("bench_fleetlog")
claiming = importlib.import_module("coordinator.claiming")
identity = importlib.import_module("coordinator.identity")
reporting = importlib.import_module("coordinator.reporting")
factory = importlib.import_module("domain.factory")

WORKER = identity.Identity.of("worker:p", None, identity.Role.WORKER)
DSN = "postgresql://postgres@127.0.0.1:5432/bench"


async def hand_overs(fleet: Any, n: int, prof: cProfile.Profile | None = None) -> float:
    """CPU seconds spent in ``transact`` over ``n`` hand-overs, each completed after."""
    commits = fleet.ctx.store.loop_commits()
    await commits.open()
    request = claiming.ClaimRequest(factory_id="f1", start=True)
    cpu = 0.0
    for i in range(n):
        if fleet.quotas.cache.loaded() is None:
            fleet.quotas.cache.refresh()  # fleetlog serve's QuotaRefresher does this
        unit = fleet.hand_over_unit(bench.SUBMITTER, {"payload": {"n": i}}, WORKER, request)
        assert unit is not None
        if prof:
            prof.enable()
        c0 = time.process_time()
        _, claimed = await commits.transact(unit)
        cpu += time.process_time() - c0
        if prof:
            prof.disable()
        assert claimed, "not handed over"
        done = [reporting.Completion(job_id=c.job.id, epoch=c.epoch, outcome="succeeded") for c in claimed]
        fleet.complete(WORKER, done)
    return cpu


def main(n: int) -> None:
    url = bench.with_database(DSN, "fleetlog_prof_ho")
    bench.recreate_database(DSN, "fleetlog_prof_ho", url)
    fleet = bench.fleet_for(url, 2)
    fleet.heartbeat(WORKER, factory.FactoryReport(factory_id="f1"))
    fleet.claim(WORKER, claiming.ClaimRequest(factory_id="f1"))  # the next hand-over is guessed
    loop = asyncio.new_event_loop()
    loop.run_until_complete(hand_overs(fleet, 200))  # warm-up
    cpu = loop.run_until_complete(hand_overs(fleet, n))
    print(f"transact CPU {cpu / n * 1e3:.3f} ms per hand-over (no profiler)")
    prof = cProfile.Profile(time.process_time)
    loop.run_until_complete(hand_overs(fleet, n, prof))
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumtime").print_stats(40)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
