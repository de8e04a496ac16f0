"""`fleetlog analytics status | rebuild | verify | sql` on each backend, in-process
(against this test process's chDB engine, in a database of the test's own)."""

from __future__ import annotations

import uuid

import pytest

from tests.acceptance.cli_runner import Cli


@pytest.fixture
def analytics_cli(cli_main: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("FLEETLOG_CLICKHOUSE_DATABASE", f"c_{uuid.uuid4().hex[:12]}")
    return cli_main


def test_status_rebuild_verify_and_sql(analytics_cli: Cli) -> None:
    cli = analytics_cli
    # Given a migrated store and analytics database, and two jobs in the log
    migrated = cli("migrate", tenant=None).json()
    assert migrated["analytics_applied"] == ["0001_raw_tables", "0002_aggregates"]
    assert cli("migrate", tenant=None).json()["analytics_applied"] == []
    for queue in ("a", "b"):
        cli("submit", "--queue", queue)
    # Then the status says ClickHouse is two events behind (nothing follows the log here)
    status = cli("analytics", "status", tenant=None).json()
    assert (status["position"], status["head"], status["events_behind"]) == (0, 2, 2)
    assert status["seconds_behind"] >= 0
    # When the projection is rebuilt here (no server leads it)
    rebuilt = cli("analytics", "rebuild", tenant=None).json()
    assert rebuilt["rebuilt_by"] == "this command" and rebuilt["events"] == 2
    # Then it is caught up, verify agrees, and SQL reads the tables by their plain names
    assert cli("analytics", "status", tenant=None).json()["events_behind"] == 0
    verified = cli("analytics", "verify", tenant=None)
    assert verified.code == 0 and verified.json()["ok"] is True
    rows = cli(
        "analytics",
        "sql",
        "SELECT queue, count() AS n FROM fleet_events GROUP BY queue ORDER BY queue",
        tenant=None,
    ).json()
    assert rows == [{"queue": "a", "n": 1}, {"queue": "b", "n": 1}]


def test_sql_refuses_anything_but_a_read(analytics_cli: Cli) -> None:
    analytics_cli("migrate", tenant=None)
    refused = analytics_cli("analytics", "sql", "DROP TABLE fleet_events", tenant=None).error()
    assert refused["error"] == "invalid-request"
    assert analytics_cli("analytics", "sql", "SELECT count() FROM fleet_events", tenant=None).json() == [
        {"count()": 0}
    ]
