"""The migrations' templating: single node and cluster DDL from one text. No cluster
here, so cluster mode is checked on the rendered text, and every statement is parsed
by ClickHouse's own parser (formatQuery) through chDB."""

from __future__ import annotations

import re

import pytest
from clickhouse_connect.driver.client import Client

from adapters.analytics.client import AnalyticsSettings
from adapters.analytics.migrate import exchange_statement
from adapters.analytics.templating import engine, render
from adapters.store.migrate import MigrationError, migrations

MACROS = {"{uuid}", "{shard}", "{replica}"}
REPLICA = "'/clickhouse/tables/{uuid}/{shard}', '{replica}'"


def _all(cluster: str | None, database: str = "fleetlog") -> list[str]:
    return [s for m in migrations("clickhouse") for s in render(m.sql, database, cluster)]


def _parses(client: Client, statement: str) -> str:
    result = client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": statement})
    return str(result.result_rows[0][0])


def test_single_node_ddl_is_plain_mergetree_without_cluster_clauses() -> None:
    statements = _all(None)
    text = "\n".join(statements)
    assert "ON CLUSTER" not in text and "Replicated" not in text and "Distributed" not in text
    assert "_local" not in text and "{" not in text
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS fleetlog.fleet_events\n") for s in statements)


def test_cluster_ddl_is_replicated_local_tables_behind_distributed_ones(
    ch_embedded: tuple[AnalyticsSettings, Client],
) -> None:
    statements = _all("analytics", database="fleetlog_rebuild")
    # Every statement runs on the whole cluster
    assert all(" ON CLUSTER 'analytics'" in s for s in statements)
    # Storage tables are local and replicated, keyed by uuid (survives EXCHANGE TABLES)
    for table in ("fleet_events", "job_runs", "run_insights", "jobs_latest", "tenant_hourly", "model_daily"):
        (create,) = [s for s in statements if f"EXISTS fleetlog_rebuild.{table}_local " in s]
        assert "ENGINE = Replicated" in create
        assert f"({REPLICA}" in create
        (front,) = [s for s in statements if f"EXISTS fleetlog_rebuild.{table} " in s]
        assert f"Distributed('analytics', 'fleetlog_rebuild', '{table}_local'" in front
    assert f"ReplicatedReplacingMergeTree({REPLICA}, version)" in "\n".join(statements)
    # Views read and write the local tables; analysts' views read the Distributed ones
    mv = next(s for s in statements if "tenant_hourly_from_runs" in s)
    assert "TO fleetlog_rebuild.tenant_hourly_local" in mv and "FROM fleetlog_rebuild.job_runs_local" in mv
    view = next(s for s in statements if "VIEW IF NOT EXISTS fleetlog_rebuild.tenant_hourly_v" in s)
    assert "FROM fleetlog_rebuild.tenant_hourly\n" in view
    # Only ClickHouse's own macros are left in braces
    assert set(re.findall(r"\{[^{}]*\}", "\n".join(statements))) <= MACROS
    # And ClickHouse parses every statement
    _, client = ch_embedded
    for statement in statements:
        assert _parses(client, statement)


def test_the_cluster_swap_statement_parses(ch_embedded: tuple[AnalyticsSettings, Client]) -> None:
    statement = exchange_statement(
        "fleetlog", "fleetlog_rebuild", ["fleet_events_local", "job_runs_local"], "c1"
    )
    assert statement.endswith(" ON CLUSTER 'c1'")
    assert "EXCHANGE TABLES fleetlog.fleet_events_local AND fleetlog_rebuild.fleet_events_local" in _parses(
        ch_embedded[1], statement
    )


@pytest.mark.parametrize(
    ("spec", "single", "cluster"),
    [
        ("ReplacingMergeTree", "ReplacingMergeTree", f"ReplicatedReplacingMergeTree({REPLICA})"),
        (
            "ReplacingMergeTree(version)",
            "ReplacingMergeTree(version)",
            f"ReplicatedReplacingMergeTree({REPLICA}, version)",
        ),
        ("AggregatingMergeTree()", "AggregatingMergeTree", f"ReplicatedAggregatingMergeTree({REPLICA})"),
    ],
)
def test_engine_placeholder(spec: str, single: str, cluster: str) -> None:
    assert engine(spec, None) == single
    assert engine(spec, "c") == cluster


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("CREATE TABLE {db}.t {onclusetr} (a UInt8) ENGINE = Memory;", "unknown placeholder"),
        ("CREATE TABLE {db}.t (a UInt8) ENGINE = {engine:Memory};", "MergeTree-family"),
        ("CREATE TABLE {db}.t (a UInt8) ENGINE = MergeTree ORDER BY a", "does not end with ';'"),
        ("CREATE TABLE {cluster}.t (a UInt8) ENGINE = MergeTree ORDER BY a;", "unknown placeholder"),
    ],
)
def test_templating_mistakes_fail_before_reaching_clickhouse(sql: str, problem: str) -> None:
    with pytest.raises(MigrationError, match=problem):
        render(sql, "fleetlog", None)


def test_a_database_name_is_an_identifier() -> None:
    with pytest.raises(MigrationError, match="not a database name"):
        render("SELECT 1;", "fleetlog; DROP DATABASE x", None)
