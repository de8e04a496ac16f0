"""Canned, tenant-scoped analytics queries for the API.

Named SQL with ClickHouse server-side parameters (``{name:Type}``): user input never
becomes SQL text. Every query filters on the tenant first, the leading column of every
table's sort key.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

from adapters.analytics.client import IDENTIFIER, AnalyticsSettings
from adapters.analytics.errors import driver_errors

Bucket = Literal["hour", "day"]
BUCKET_HOURS: dict[str, int] = {"hour": 1, "day": 24}
MAX_LIMIT = 10_000

RUNS = """
SELECT job_id, queue, kind, priority, attempt, epoch, factory_id, ready_at, leased_at, ended_at,
       wait_ms, run_ms, outcome, error_kind, retryable, notification_id
FROM {db}.job_runs FINAL
WHERE tenant = {tenant:String}
  AND ended_at >= {since:DateTime64(6, 'UTC')} AND ended_at < {until:DateTime64(6, 'UTC')}
  AND ({queue:Nullable(String)} IS NULL OR queue = {queue:Nullable(String)})
ORDER BY ended_at DESC, notification_id DESC
LIMIT {limit:UInt32}
"""

# From the aggregate table, not tenant_hourly_v: a day's quantiles must merge the hours'
# states; quantiles of the view's hourly output cannot be combined.
THROUGHPUT = """
SELECT toStartOfInterval(hour, INTERVAL {hours:UInt32} HOUR) AS bucket,
       sumMerge(submitted) AS submitted,
       sumMerge(succeeded) AS succeeded,
       sumMerge(failed) AS failed,
       sumMerge(dead_lettered) AS dead_lettered,
       sumMerge(reaped) AS reaped,
       sumMerge(stale_refused) AS stale_refused,
       countMerge(runs) AS runs,
       quantilesMerge(0.5, 0.95, 0.99)(wait_ms) AS wait_ms,
       quantilesMerge(0.5, 0.95, 0.99)(run_ms) AS run_ms
FROM {db}.tenant_hourly
WHERE tenant = {tenant:String}
  AND hour >= toStartOfHour({since:DateTime64(6, 'UTC')}) AND hour < {until:DateTime64(6, 'UTC')}
GROUP BY bucket
ORDER BY bucket
"""


class AnalyticsQueries:
    def __init__(self, client: Client, settings: AnalyticsSettings, database: str | None = None):
        self._client = client
        self._settings = settings
        self._db = database or settings.database
        if not IDENTIFIER.match(self._db):
            raise ValueError(f"not a database name: {self._db!r}")

    def runs(
        self,
        tenant: str,
        since: datetime,
        until: datetime,
        queue: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The tenant's runs that ended in [since, until), newest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        params = {"tenant": tenant, "since": since, "until": until, "queue": queue, "limit": limit}
        return self._rows("reading runs", RUNS, params)

    def throughput(
        self, tenant: str, since: datetime, until: datetime, bucket: Bucket = "hour"
    ) -> list[dict[str, Any]]:
        """Per bucket (hour or UTC day) in [since, until): event counts, and wait and run
        time quantiles in ms (None where the bucket had no timed run)."""
        if bucket not in BUCKET_HOURS:
            raise ValueError(f"bucket must be one of {sorted(BUCKET_HOURS)}")
        params = {"tenant": tenant, "since": since, "until": until, "hours": BUCKET_HOURS[bucket]}
        out = []
        for row in self._rows("reading throughput", THROUGHPUT, params):
            for name in ("wait_ms", "run_ms"):
                p50, p95, p99 = (None if math.isnan(v) else v for v in row.pop(name))
                row |= {f"{name[:-3]}_p50_ms": p50, f"{name[:-3]}_p95_ms": p95, f"{name[:-3]}_p99_ms": p99}
            out.append(row)
        return out

    def close(self) -> None:
        self._client.close()

    def _rows(self, what: str, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        # {db} is ours (validated above), everything else a server-side parameter.
        text = sql.replace("{db}", self._db)
        with driver_errors(self._settings.describe(), what):
            result = self._client.query(text, parameters=params)
            names = result.column_names
            return [dict(zip(names, row, strict=True)) for row in result.result_rows]
