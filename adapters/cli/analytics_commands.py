"""Operator commands for the ClickHouse side: analytics status | rebuild | verify | sql.

``status`` reads only the event store, so it works while a server owns the embedded
ClickHouse directory. ``rebuild`` runs here when no server leads the projection, and
otherwise asks the leading server to do it and waits. ``verify`` and ``sql`` open
ClickHouse: with the embedded engine, stop the server first (or use a ClickHouse server).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from adapters.bootstrap import analytics_settings
from adapters.cli.context import Invocation, Scope
from adapters.cli.options import Subparsers, add_command, add_group
from adapters.cli.output import EXIT_DIFFERENCES, Output
from coordinator.analytics import PROJECTION, AnalyticsConsumer, analytics_status, verify
from coordinator.errors import Unavailable

if TYPE_CHECKING:
    from adapters.analytics.analytics import ClickHouseAnalytics

LOCK = f"analytics-{PROJECTION}"


def register(commands: Subparsers) -> None:
    group = add_group(commands, "analytics", help="the ClickHouse projection: lag, rebuild, verify, SQL")
    add_command(
        group,
        "status",
        run_status,
        help="how far ClickHouse is behind the event log",
        scope=Scope.NONE,
        command="analytics status",
    )
    rebuild = add_command(
        group,
        "rebuild",
        run_rebuild,
        help="replay the whole log into fresh tables and swap them in",
        scope=Scope.NONE,
        command="analytics rebuild",
    )
    rebuild.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="S",
        help="when a server leads the projection: how long to wait for it to finish (default 600)",
    )
    add_command(
        group,
        "verify",
        run_verify,
        help="compare ClickHouse with the event log (exit status 1 when they differ)",
        scope=Scope.NONE,
        command="analytics verify",
    )
    sql = add_command(
        group,
        "sql",
        run_sql,
        help="run one read-only query (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) on the analytics database",
        scope=Scope.NONE,
        command="analytics sql",
    )
    sql.add_argument("query", metavar="SQL")


@contextmanager
def _clickhouse(inv: Invocation) -> Iterator[ClickHouseAnalytics]:
    from adapters.analytics.analytics import ClickHouseAnalytics

    analytics = ClickHouseAnalytics.open(analytics_settings(inv.settings))
    try:
        yield analytics
    finally:
        analytics.close()


def run_status(inv: Invocation, args: argparse.Namespace) -> Output:
    ctx = inv.fleet.ctx
    status = analytics_status(ctx.store, ctx.clock, PROJECTION)
    data = status.to_json() | {"sink": analytics_settings(inv.settings).describe()}
    footer = (
        f"{status.events_behind} event(s), {status.seconds_behind:.1f} s behind the log "
        f"(position {status.position} of {status.head})"
    )
    return Output(data, footer=footer)


def run_rebuild(inv: Invocation, args: argparse.Namespace) -> Output:
    ctx = inv.fleet.ctx
    lock = ctx.store.leader_lock(LOCK)
    if not lock.try_acquire():
        return _ask_the_leader(inv, args.wait)
    try:
        with _clickhouse(inv) as analytics:
            consumer = AnalyticsConsumer(ctx.store, analytics, ctx.clock, member="fleetlog analytics rebuild")
            consumer.lock = lock  # the lock taken above (a second flock would refuse us)
            result = consumer.rebuild()
    finally:
        lock.release()
    data: dict[str, Any] = {
        "rebuilt_by": "this command",
        "events": result.events,
        "position": result.position,
        "seconds": round(result.seconds, 3),
        "events_per_second": round(result.events_per_second),
        "rows": result.rows,
    }
    return Output(data, footer=f"rebuilt {result.events} events ({data['events_per_second']} events/s)")


def _ask_the_leader(inv: Invocation, wait: float) -> Output:
    """A server leads the projection: it rebuilds between two batches; wait for it."""
    ctx = inv.fleet.ctx
    positions = ctx.store.analytics_positions()
    asked = ctx.clock.now()
    positions.request_rebuild(PROJECTION, asked)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        position = positions.get(PROJECTION)
        if position is not None and position.rebuilt_at is not None and position.rebuilt_at >= asked:
            data = {
                "rebuilt_by": position.leader,
                "position": position.position,
                "rebuilt_at": position.rebuilt_at,
            }
            return Output(data, footer=f"rebuilt by the leading server {position.leader}")
        time.sleep(0.5)
    raise Unavailable(
        f"a server leads the analytics projection and has not finished the rebuild within {wait:g} s; "
        "it is still asked to: check `fleetlog analytics status` (rebuilt_at) later"
    )


def run_verify(inv: Invocation, args: argparse.Namespace) -> Output:
    ctx = inv.fleet.ctx
    position = ctx.store.analytics_positions().get(PROJECTION)
    done = 0 if position is None else position.position
    with _clickhouse(inv) as analytics:
        result = verify(ctx.store, analytics, done)
    d = result.differences
    data = {
        "ok": result.ok,
        "position": done,
        "events_in_log": result.events_in_log,
        "rows": result.rows,
        "missing": [str(x) for x in d.missing[:100]],
        "extra": [str(x) for x in d.extra[:100]],
        "mismatched": {
            str(k): {"log": v[0], "clickhouse": v[1]} for k, v in list(d.mismatched.items())[:100]
        },
    }
    if result.ok:
        return Output(data, footer=f"ClickHouse matches the log up to notification {done}")
    problems = len(d.missing) + len(d.extra) + len(d.mismatched)
    return Output(
        data,
        footer=f"{problems} aggregate(s) differ from the log: run 'fleetlog analytics rebuild'",
        exit_code=EXIT_DIFFERENCES,
    )


def run_sql(inv: Invocation, args: argparse.Namespace) -> Output:
    with _clickhouse(inv) as analytics:
        # Unqualified names mean the analytics tables (the client's default is `default`).
        analytics.client.database = analytics.database
        columns, rows = analytics.sink.query(args.query)
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    return Output(records, columns=columns, footer=f"{len(records)} row(s)")
