"""``fleetlog analytics sql`` through the sink: reading statements run, anything that
writes is refused before ClickHouse sees it, and the sink's client stays writable."""

from __future__ import annotations

import pytest

from coordinator.errors import InvalidRequest
from projections.analytics.columns import COLUMNS
from tests.analytics.clickhouse_rows import make_event
from tests.analytics.conftest import Ch


def test_a_select_with_parameters_returns_columns_and_rows(ch: Ch) -> None:
    ch.sink.write({"fleet_events": [make_event(tenant="acme"), make_event(tenant="globex")]}, COLUMNS, "t:1")
    columns, rows = ch.sink.query(
        f"SELECT tenant, count() AS n FROM {ch.settings.database}.fleet_events "
        "WHERE tenant = {tenant:String} GROUP BY tenant",
        {"tenant": "acme"},
    )
    assert columns == ["tenant", "n"]
    assert rows == [("acme", 1)]


@pytest.mark.parametrize(
    "sql",
    [
        "SHOW TABLES FROM {db}",
        "DESCRIBE TABLE {db}.job_runs",
        "EXISTS TABLE {db}.job_runs",
        "WITH 1 AS x SELECT x",
        "EXPLAIN SELECT 1",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "select 1 -- a comment; drop table {db}.job_runs",
    ],
)
def test_reading_statements_run(ch: Ch, sql: str) -> None:
    columns, _ = ch.sink.query(sql.replace("{db}", ch.settings.database))
    assert columns


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("INSERT INTO {db}.fleet_events (tenant) VALUES ('x')", "INSERT is not a reading statement"),
        ("DROP TABLE {db}.job_runs", "DROP is not"),
        ("/* looks harmless */ DROP TABLE {db}.job_runs", "DROP is not"),
        ("TRUNCATE TABLE {db}.job_runs", "TRUNCATE is not"),
        ("ALTER TABLE {db}.job_runs DELETE WHERE 1", "ALTER is not"),
        ("OPTIMIZE TABLE {db}.job_runs FINAL", "OPTIMIZE is not"),
        ("SYSTEM STOP MERGES", "SYSTEM is not"),
        ("SET readonly = 0", "SET is not"),
        ("SELECT 1 INTO OUTFILE '/tmp/fleetlog-outfile.txt'", "INTO OUTFILE"),
        ("SELECT 1; DROP TABLE {db}.job_runs", "Multi-statements"),
        ("SELECT 1 SETTINGS readonly = 0", "readonly"),
        ("SELEC 1", "Syntax error"),
    ],
)
def test_anything_but_one_reading_statement_is_refused(ch: Ch, sql: str, why: str) -> None:
    # When a writing (or broken) statement is sent
    with pytest.raises(InvalidRequest, match=why) as refused:
        ch.sink.query(sql.replace("{db}", ch.settings.database))
    # Then it says so, the tables are all there, and the sink still writes
    assert refused.value.code == "invalid-request"
    assert ch.scalar(f"EXISTS TABLE {ch.settings.database}.job_runs") == 1
    ch.sink.write({"fleet_events": [make_event()]}, COLUMNS, "after")
    assert ch.sink.row_counts()["fleet_events"] == 1


def test_an_unknown_table_is_a_bad_request(ch: Ch) -> None:
    with pytest.raises(InvalidRequest, match="UNKNOWN_TABLE"):
        ch.sink.query(f"SELECT * FROM {ch.settings.database}.no_such_table")
