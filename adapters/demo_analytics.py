"""The demo's analytics epilogue: the same story, read back from ClickHouse.

The demo runs the ClickHouse consumer beside the reaper (as ``fleetlog serve`` does), on
the embedded engine in the demo's directory; at the end it waits for the consumer to
catch up, verifies the tables against the log and prints what an analyst would see.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from adapters.analytics.runtime import AnalyticsRuntime
from adapters.bootstrap import Settings, analytics_settings
from coordinator.analytics import PROJECTION, ConsumerConfig, analytics_status, verify
from coordinator.fleet import Fleet

CONFIG = ConsumerConfig(idle_seconds=0.1, linger_seconds=0.05)

RUNS_BY_OUTCOME = """
SELECT tenant, outcome, count() AS runs, round(avg(wait_ms), 1) AS avg_wait_ms,
       round(avg(run_ms)) AS avg_run_ms
FROM job_runs GROUP BY tenant, outcome ORDER BY tenant, outcome
"""
PER_HOUR = """
SELECT tenant, sum(submitted) AS submitted, sum(succeeded) AS succeeded, sum(reaped) AS reaped,
       sum(stale_refused) AS stale_refused
FROM tenant_hourly_v GROUP BY tenant ORDER BY tenant
"""


def runtime_for(fleet: Fleet, settings: Settings) -> AnalyticsRuntime:
    return AnalyticsRuntime(fleet, analytics_settings(settings), CONFIG)


class AnalyticsEpilogueFailed(Exception):
    pass


def print_analytics(fleet: Fleet, runtime: AnalyticsRuntime, out: TextIO, timeout: float = 30.0) -> None:
    store, clock = fleet.ctx.store, fleet.ctx.clock
    deadline = time.monotonic() + timeout
    while (status := analytics_status(store, clock, PROJECTION)).events_behind:
        if time.monotonic() > deadline:
            raise AnalyticsEpilogueFailed(f"the ClickHouse consumer did not catch up: {status}")
        time.sleep(0.1)
    analytics = runtime.open()
    checked = verify(store, analytics, status.position)
    if not checked.ok:
        raise AnalyticsEpilogueFailed(f"ClickHouse differs from the event log: {checked.differences}")
    analytics.client.database = analytics.database
    print(f"\nAnalytics ({runtime.settings.describe()}), followed live by the consumer:", file=out)
    print(
        f"  {status.position} events copied, 0 behind; `fleetlog analytics verify`: every job's "
        "versions match the log",
        file=out,
    )
    for title, sql in (
        ("runs by outcome (job_runs)", RUNS_BY_OUTCOME),
        ("per tenant (tenant_hourly_v)", PER_HOUR),
    ):
        columns, rows = analytics.sink.query(sql)
        print(f"  {title}", file=out)
        print("    " + "  ".join(f"{c:>13}" for c in columns), file=out)
        for row in rows:
            print("    " + "  ".join(f"{_cell(v):>13}" for v in row), file=out)


def _cell(value: Any) -> str:
    return str(value)
