"""The analytics routes: the consumer's lag, and canned tenant-scoped queries over
ClickHouse (reader role). A tenant-bound token reads its own tenant; a fleet-wide one
names the tenant with ``?tenant=``. ``/v1/analytics/status`` shows fleet-wide counts
(log positions) only to fleet-wide tokens; a tenant-bound one sees how fresh the data is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BeforeValidator, Field, field_validator
from starlette.responses import Response

from adapters.analytics.runtime import AnalyticsRuntime
from adapters.http.routing import Call, Endpoint, ListOf
from adapters.http.schemas import Body, Problem
from coordinator.errors import AnalyticsOff, Forbidden, TenantRequired
from coordinator.identity import Identity, Role
from domain.job.spec import TenantName

JSON = "application/json"
MAX_ROWS = 1000


class AnalyticsConsumerStats(Body):
    leader: bool
    batches: int
    events: int
    rows: int
    write_failures: int
    last_error: str | None
    batch_size: int
    active_parts_max: int | None
    merges_running: int | None


class AnalyticsStatusBody(Body):
    projection: str
    connected: bool
    """This server has reached ClickHouse."""
    seconds_behind: float
    """Age of the oldest event not yet in ClickHouse (0 when caught up)."""
    events_behind: int | None = None
    position: int | None = None
    head: int | None = None
    pending: list[int] | None = None
    leader: str | None = None
    updated_at: datetime | None = None
    rebuilt_at: datetime | None = None
    rebuild_requested_at: datetime | None = None
    sink: str | None = None
    database: str | None = None
    consumer: AnalyticsConsumerStats | None = None


def _rfc3339(value: Any) -> Any:
    # Pydantic's lax datetime reads "0.5" as a Unix time; the document says RFC 3339.
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("use an RFC 3339 time with an offset, e.g. 2026-01-31T12:00:00Z")
    return value


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$")
Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class Window(Body):
    tenant: TenantName | None = None
    """Fleet-wide tokens: the tenant to read (tenant-bound tokens read their own)."""
    since: Time | None = None
    until: Time | None = None

    @field_validator("since", "until")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        # ClickHouse's DateTime64 covers 1900-2299; outside it the query itself fails.
        if value is None:
            return None
        try:
            year = value.astimezone(UTC).year
        except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            year = value.year
        if not 1900 < year < 2299:
            raise ValueError("use a time between 1901 and 2298")
        return value


class RunsQuery(Window):
    queue: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,62}$")] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_ROWS)] = 100


class ThroughputQuery(Window):
    bucket: Literal["hour", "day"] = "hour"


class RunRow(Body):
    job_id: UUID
    queue: str
    kind: str
    priority: int
    attempt: int
    epoch: int
    factory_id: str
    ready_at: datetime
    leased_at: datetime
    ended_at: datetime
    wait_ms: float
    run_ms: float
    outcome: str
    error_kind: str
    retryable: bool
    notification_id: int


class ThroughputRow(Body):
    bucket: datetime
    submitted: int
    succeeded: int
    failed: int
    dead_lettered: int
    reaped: int
    stale_refused: int
    runs: int
    wait_p50_ms: float | None
    wait_p95_ms: float | None
    wait_p99_ms: float | None
    run_p50_ms: float | None
    run_p95_ms: float | None
    run_p99_ms: float | None


RUNS = ListOf(RunRow)
THROUGHPUT = ListOf(ThroughputRow)


def _tenant(identity: Identity, asked: str | None, action: str) -> str:
    if identity.tenant is None:
        if asked is None:
            raise TenantRequired(action)
        return asked
    if asked is not None and asked != identity.tenant:
        raise Forbidden(f"{action} of another tenant", "a token of that tenant")
    return identity.tenant


def _window(q: Window, default: timedelta) -> tuple[datetime, datetime]:
    until = q.until or datetime.now(UTC)
    since = q.since or until - default
    return since, until


class AnalyticsApi:
    def __init__(self, runtime: AnalyticsRuntime | None, run: Callable[..., Awaitable[Any]]):
        self.runtime = runtime
        self._run = run
        """The API's way to call the store off the event loop (``Api.run``: one thread limit)."""

    def _runtime(self) -> AnalyticsRuntime:
        if self.runtime is None:
            raise AnalyticsOff
        return self.runtime

    async def status(self, call: Call) -> Response:
        data: dict[str, Any] = await self._run(self._runtime().status)
        if call.identity.tenant is not None:
            keep = ("projection", "connected", "seconds_behind", "rebuilt_at")
            data = {k: v for k, v in data.items() if k in keep}
        return Response(AnalyticsStatusBody.model_validate(data).model_dump_json(), media_type=JSON)

    async def runs(self, call: Call) -> Response:
        q: RunsQuery = call.query
        tenant = _tenant(call.identity, q.tenant, "reading runs")
        since, until = _window(q, timedelta(days=1))
        rows = await self._run(self._runtime().runs, tenant, since, until, q.queue, q.limit)
        return Response(RUNS.dump([RunRow.model_validate(r) for r in rows]), media_type=JSON)

    async def throughput(self, call: Call) -> Response:
        q: ThroughputQuery = call.query
        tenant = _tenant(call.identity, q.tenant, "reading throughput")
        since, until = _window(q, timedelta(days=7))
        rows = await self._run(self._runtime().throughput, tenant, since, until, q.bucket)
        return Response(THROUGHPUT.dump([ThroughputRow.model_validate(r) for r in rows]), media_type=JSON)

    def endpoints(self) -> list[Endpoint]:
        common: dict[int, Any] = {401: Problem, 403: Problem, 502: Problem, 503: Problem}
        return [
            Endpoint(
                "GET",
                "/v1/analytics/status",
                "analytics_status",
                "How far ClickHouse is behind the event log.",
                self.status,
                Role.READER,
                {200: AnalyticsStatusBody, **common},
                tag="analytics",
            ),
            Endpoint(
                "GET",
                "/v1/analytics/runs",
                "analytics_runs",
                "Recent runs (attempts) of a tenant, newest first (default: the last 24 h).",
                self.runs,
                Role.READER,
                {200: RUNS, **common, 422: Problem},
                query=RunsQuery,
                tag="analytics",
            ),
            Endpoint(
                "GET",
                "/v1/analytics/throughput",
                "analytics_throughput",
                "A tenant's counts and wait/run quantiles per hour or day (default: the last 7 days).",
                self.throughput,
                Role.READER,
                {200: THROUGHPUT, **common, 422: Problem},
                query=ThroughputQuery,
                tag="analytics",
            ),
        ]
