"""Migrations: applied from empty, once; the schema is the fold's; forward-only; a
rebuilt database swapped in keeps its views feeding it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from adapters.analytics.client import AnalyticsSettings
from adapters.analytics.migrate import (
    TRACKING,
    create_schema,
    drop_schema,
    migrate_clickhouse,
    storage_tables,
    swap_in,
)
from adapters.analytics.sink import RAW_TABLES, ClickHouseSink
from adapters.store.migrate import MigrationError, migrations
from projections.analytics.columns import COLUMNS
from tests.analytics.clickhouse_rows import make_event, make_insight, make_run
from tests.analytics.conftest import Ch, fresh_name

ALL = [f"{m.version:04d}_{m.name}" for m in migrations("clickhouse")]


def test_migrations_apply_from_empty_then_never_again(ch_target: tuple[AnalyticsSettings, Client]) -> None:
    base, client = ch_target
    settings = base.model_copy(update={"database": fresh_name("m")})
    try:
        # Given no database; When migrating twice
        first = migrate_clickhouse(client, settings)
        second = migrate_clickhouse(client, settings)
        # Then every migration applies once, in order, and is recorded once
        assert first == ALL and len(ALL) >= 2
        assert second == []
        recorded = client.query(f"SELECT version FROM {settings.database}.{TRACKING} FINAL ORDER BY version")
        assert [v for (v,) in recorded.result_rows] == [m.version for m in migrations("clickhouse")]
    finally:
        drop_schema(client, base, settings.database)


def test_the_raw_tables_have_the_folds_columns_in_order(ch: Ch) -> None:
    for table in RAW_TABLES:
        names = ch.rows(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "AND default_kind != 'ALIAS' ORDER BY position",
            db=ch.settings.database,
            t=table,
        )
        assert tuple(n for (n,) in names) == COLUMNS[table], table


def test_every_table_that_takes_inserts_deduplicates(ch: Ch) -> None:
    tables = storage_tables(ch.client, ch.settings.database)
    assert set(tables) == {*RAW_TABLES, "tenant_hourly", "model_daily"}
    for table in tables:
        ddl = str(ch.scalar(f"SHOW CREATE TABLE {ch.settings.database}.{table}"))
        assert "non_replicated_deduplication_window = 10000" in ddl, table


def test_a_migration_changed_after_it_was_applied_is_refused(ch: Ch) -> None:
    # Given version 1 recorded with another checksum
    ch.client.insert(
        TRACKING,
        [(1, "raw_tables", "not-the-checksum", datetime(2099, 1, 1, tzinfo=UTC))],
        column_names=("version", "name", "checksum", "applied_at"),
        database=ch.settings.database,
    )
    # Then migrating refuses, saying what to do
    with pytest.raises(MigrationError, match="forward-only"):
        migrate_clickhouse(ch.client, ch.settings)


def test_a_database_from_a_newer_fleetlog_is_refused(ch: Ch) -> None:
    ch.client.insert(
        TRACKING,
        [(999, "future", "x", datetime.now(UTC))],
        column_names=("version", "name", "checksum", "applied_at"),
        database=ch.settings.database,
    )
    with pytest.raises(MigrationError, match="upgrade Fleetlog"):
        migrate_clickhouse(ch.client, ch.settings)


def _submitted(ch: Ch, database: str) -> list[tuple[object, ...]]:
    return ch.rows(f"SELECT tenant, submitted FROM {database}.tenant_hourly_v ORDER BY tenant")


def test_swap_in_makes_the_fresh_tables_live_and_the_views_feed_them(ch: Ch) -> None:
    live = ch.settings.database
    fresh = fresh_name("rebuild")
    try:
        # Given live rows for tenant "old", and a rebuilt database with rows for "new"
        ch.sink.write({"fleet_events": [make_event(tenant="old")]}, COLUMNS, "p:1-1")
        assert create_schema(ch.client, ch.settings, fresh) == ALL
        rebuilt = ClickHouseSink(ch.client, ch.settings, database=fresh)
        rebuilt.write(
            {
                "fleet_events": [make_event(tenant="new"), make_event(tenant="new", notification_id=2)],
                "job_runs": [make_run(tenant="new")],
                "run_insights": [make_insight(tenant="new")],
            },
            COLUMNS,
            "p:1-2",
        )
        # When swapping it in
        swapped = swap_in(ch.client, ch.settings, fresh)
        # Then the live names show the rebuilt rows and aggregates
        assert set(swapped) == {*RAW_TABLES, "tenant_hourly", "model_daily"}
        assert _submitted(ch, live) == [("new", 2)]
        assert _submitted(ch, fresh) == [("old", 1)]
        # And rows written to the live names after the swap reach the live aggregates only
        ch.sink.write(
            {
                "fleet_events": [make_event(tenant="new", notification_id=3)],
                "run_insights": [make_insight(tenant="new")],
            },
            COLUMNS,
            "p:3-3",
        )
        assert _submitted(ch, live) == [("new", 3)]
        assert ch.scalar(f"SELECT sum(runs) FROM {live}.model_daily_v") == 2
        assert _submitted(ch, fresh) == [("old", 1)]
        assert ch.sink.row_counts()["fleet_events"] == 3
    finally:
        drop_schema(ch.client, ch.settings, fresh)


def test_swap_in_refuses_the_live_database_and_unmigrated_ones(ch: Ch) -> None:
    with pytest.raises(MigrationError, match="another database"):
        swap_in(ch.client, ch.settings, ch.settings.database)
    with pytest.raises(MigrationError, match="only a rebuild"):
        drop_schema(ch.client, ch.settings, ch.settings.database)
    half = fresh_name("half")
    try:
        ch.client.command(f"CREATE DATABASE {half}")
        ch.client.command(f"CREATE TABLE {half}.{TRACKING} AS {ch.settings.database}.{TRACKING}")
        with pytest.raises(MigrationError, match="migrate both"):
            swap_in(ch.client, ch.settings, half)
    finally:
        drop_schema(ch.client, ch.settings, half)
