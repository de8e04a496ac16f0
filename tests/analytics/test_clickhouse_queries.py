"""The API's canned queries: tenant-scoped, parameterised, newest first."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from adapters.analytics.queries import AnalyticsQueries
from projections.analytics.columns import COLUMNS
from tests.analytics.clickhouse_rows import T0, make_event, make_run
from tests.analytics.conftest import Ch

DAY = timedelta(days=1)


@pytest.fixture
def queries(ch: Ch) -> AnalyticsQueries:
    return AnalyticsQueries(ch.client, ch.settings)


def _runs(ch: Ch) -> None:
    rows = [
        make_run(tenant="acme", queue="q1", ended_at=T0 + timedelta(minutes=1), notification_id=1),
        make_run(tenant="acme", queue="q2", ended_at=T0 + timedelta(minutes=2), notification_id=2),
        make_run(tenant="acme", queue="q1", ended_at=T0 + timedelta(minutes=3), notification_id=3),
        make_run(tenant="globex", queue="q1", ended_at=T0 + timedelta(minutes=4), notification_id=4),
    ]
    ch.sink.write({"job_runs": rows}, COLUMNS, "runs")


def test_runs_are_the_tenants_newest_first(ch: Ch, queries: AnalyticsQueries) -> None:
    _runs(ch)
    got = queries.runs("acme", T0, T0 + DAY)
    assert [r["notification_id"] for r in got] == [3, 2, 1]
    assert got[0]["ended_at"] == T0 + timedelta(minutes=3)  # aware UTC
    assert got[0]["ended_at"].tzinfo is not None
    assert [r["notification_id"] for r in queries.runs("acme", T0, T0 + DAY, queue="q1")] == [3, 1]
    assert [r["notification_id"] for r in queries.runs("acme", T0, T0 + DAY, limit=1)] == [3]
    # [since, until): the run at exactly `until` is out
    assert [r["notification_id"] for r in queries.runs("acme", T0, T0 + timedelta(minutes=2))] == [1]


def test_runs_never_leak_another_tenant(ch: Ch, queries: AnalyticsQueries) -> None:
    _runs(ch)
    assert queries.runs("acme' OR 1=1 --", T0, T0 + DAY) == []
    assert queries.runs("acme", T0, T0 + DAY, queue="q1' OR '1'='1") == []
    assert {r["notification_id"] for r in queries.runs("globex", T0, T0 + DAY)} == {4}
    with pytest.raises(ValueError, match="limit"):
        queries.runs("acme", T0, T0 + DAY, limit=0)


def test_throughput_by_hour_and_by_day(ch: Ch, queries: AnalyticsQueries) -> None:
    # Given submissions in two hours, and runs in the first only
    events = [
        make_event(type="JobSubmitted", at=T0 + timedelta(minutes=5), notification_id=1),
        make_event(type="JobSubmitted", at=T0 + timedelta(minutes=65), notification_id=2),
        make_event(type="JobSucceeded", at=T0 + timedelta(minutes=66), notification_id=3),
        make_event(tenant="globex", type="JobSubmitted", at=T0, notification_id=4),
    ]
    runs = [make_run(leased_at=T0 + timedelta(seconds=s), notification_id=10 + s) for s in (1, 2, 3)]
    ch.sink.write({"fleet_events": events, "job_runs": runs}, COLUMNS, "t")
    # Then per hour
    hourly = queries.throughput("acme", T0, T0 + DAY)
    assert [(r["bucket"], r["submitted"], r["succeeded"], r["runs"]) for r in hourly] == [
        (T0, 1, 0, 3),
        (T0 + timedelta(hours=1), 1, 1, 0),
    ]
    assert hourly[0]["wait_p50_ms"] == pytest.approx(2000) and hourly[0]["run_p99_ms"] == pytest.approx(5000)
    assert hourly[1]["wait_p50_ms"] is None  # no timed run that hour
    # And per day, the hours' states merged (quantiles over all of the day's runs)
    (daily,) = queries.throughput("acme", T0 - timedelta(hours=10), T0 + DAY, bucket="day")
    assert daily["bucket"] == T0.replace(hour=0)
    assert (daily["submitted"], daily["succeeded"], daily["runs"]) == (2, 1, 3)
    assert not math.isnan(daily["wait_p95_ms"])
    with pytest.raises(ValueError, match="bucket"):
        queries.throughput("acme", T0, T0 + DAY, bucket="week")  # type: ignore[arg-type]
