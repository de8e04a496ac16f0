"""Migrations: forward-only, applied once, equal across backends, equal to the library's DDL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from adapters.eventstore.application import EVENTS_TABLE
from adapters.sql import queries
from adapters.store import migrate as m
from tests.support import pg_admin, pg_url

EXPECTED_TABLES = {
    "fleetlog_events",
    "fleet_schema_migrations",
    "fleet_jobs",
    "fleet_queue",
    "fleet_idempotency",
    "fleet_dependencies",
    "fleet_factories",
    "fleet_profiles",
    "fleet_tenants",
    "fleet_analytics_positions",
}


def sqlite_columns(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


def pg_columns(url: str) -> dict[str, list[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name, c.ordinal_position"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


@pytest.fixture
def empty_pg() -> str:
    name = "fleetlog_mig_" + __import__("uuid").uuid4().hex[:10]
    try:
        with pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield pg_url(name)
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_both_backends_number_their_migrations_alike() -> None:
    pg = [(x.version, x.name) for x in m.migrations("postgres")]
    lite = [(x.version, x.name) for x in m.migrations("sqlite")]
    assert pg == lite
    assert [v for v, _ in pg] == list(range(1, len(pg) + 1))


def test_both_backends_define_the_same_named_queries() -> None:
    assert set(queries("postgres")) == set(queries("sqlite"))


def test_sqlite_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    applied = m.migrate_sqlite(path)
    assert [x.version for x in applied] == [x.version for x in m.migrations("sqlite")]
    assert m.migrate_sqlite(path) == []
    assert set(sqlite_columns(path)) == EXPECTED_TABLES


@pytest.mark.postgres
def test_postgres_migrations_apply_once_and_match_sqlite(empty_pg: str, tmp_path: Path) -> None:
    assert len(m.migrate_postgres(empty_pg)) == len(m.migrations("postgres"))
    assert m.migrate_postgres(empty_pg) == []
    pg = pg_columns(empty_pg)
    assert set(pg) == EXPECTED_TABLES
    # Same view tables and columns, in the same order, on both backends (the events
    # table is the library's on each: SQLite numbers notifications with its rowid)
    m.migrate_sqlite(tmp_path / "f.db")
    lite = sqlite_columns(tmp_path / "f.db")
    assert pg.pop(EVENTS_TABLE)[:4] == lite.pop(EVENTS_TABLE)
    assert pg == lite


@pytest.mark.postgres
def test_the_events_table_is_the_one_the_library_creates(empty_pg: str) -> None:
    m.migrate_postgres(empty_pg)
    ours = pg_columns(empty_pg)[EVENTS_TABLE]
    # A database where the library itself creates the table
    name = empty_pg.rsplit("/", 1)[1] + "_lib"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        datastore = PostgresDatastore(name, "127.0.0.1", 5432, "postgres", "")
        recorder = PostgresApplicationRecorder(datastore, events_table_name=EVENTS_TABLE)
        recorder.create_table()
        datastore.close()
        assert pg_columns(pg_url(name))[EVENTS_TABLE] == ours
        index_sql = "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname"
        with psycopg.connect(pg_url(name)) as a, psycopg.connect(empty_pg) as b:
            assert (
                a.execute(index_sql, (EVENTS_TABLE,)).fetchall()
                == b.execute(index_sql, (EVENTS_TABLE,)).fetchall()
            )
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    # And the library's create_table on our schema changes nothing (and does not fail)
    datastore = PostgresDatastore(empty_pg.rsplit("/", 1)[1], "127.0.0.1", 5432, "postgres", "")
    PostgresApplicationRecorder(datastore, events_table_name=EVENTS_TABLE).create_table()
    datastore.close()
    assert pg_columns(empty_pg)[EVENTS_TABLE] == ours


def test_the_sqlite_events_table_is_the_one_the_library_creates(tmp_path: Path) -> None:
    m.migrate_sqlite(tmp_path / "ours.db")
    datastore = SQLiteDatastore(str(tmp_path / "lib.db"))
    SQLiteApplicationRecorder(datastore, events_table_name=EVENTS_TABLE).create_table()
    datastore.close()
    with sqlite3.connect(tmp_path / "ours.db") as a, sqlite3.connect(tmp_path / "lib.db") as b:
        info = f"PRAGMA table_info({EVENTS_TABLE})"
        assert a.execute(info).fetchall() == b.execute(info).fetchall()


def test_a_changed_applied_migration_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.db"
    m.migrate_sqlite(path)
    original = m.migrations
    edited = [
        m.Migration(x.version, x.name, x.sql + "\n-- edited") if x.version == 1 else x
        for x in original("sqlite")
    ]
    monkeypatch.setattr(m, "migrations", lambda backend: edited)
    with pytest.raises(m.MigrationError, match="changed after it was applied"):
        m.migrate_sqlite(path)


def test_a_database_from_a_newer_fleetlog_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.db"
    m.migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO fleet_schema_migrations VALUES (99, 'future', 'x', 'now')")
    with pytest.raises(m.MigrationError, match="newer version"):
        m.migrate_sqlite(path)


@pytest.mark.postgres
def test_concurrent_migrators_apply_each_migration_once(empty_pg: str) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(len(m.migrate_postgres(empty_pg)))
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [0, 0, 0, len(m.migrations("postgres"))]


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_named_queries_can_be_joined_into_one_string(backend: str) -> None:
    # Units of work send several named queries in one round trip: none may end inside a
    # comment that would swallow the statement joined after it.
    for name, sql in queries(backend).items():
        last = sql.strip().splitlines()[-1].strip()
        assert not last.startswith("--"), f"{backend}.sql query {name} ends with a comment"
        assert "--" not in last, f"{backend}.sql query {name} ends on a line with a comment"


def test_the_lease_view_reads_the_job_summary(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    m.migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        views = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")]
        assert views == ["fleet_leases"]
        assert [r[1] for r in conn.execute("PRAGMA table_info(fleet_leases)")] == [
            "job_id",
            "tenant",
            "factory_id",
            "epoch",
            "expires_at",
        ]


def test_the_quota_window_index_exists_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    m.migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        columns = [r[2] for r in conn.execute("PRAGMA index_info(fleet_jobs_tenant_created)")]
    assert columns == ["tenant", "created_at"]


@pytest.mark.postgres
def test_the_quota_window_index_exists_on_postgres(empty_pg: str) -> None:
    m.migrate_postgres(empty_pg)
    with psycopg.connect(empty_pg) as conn:
        [(definition,)] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'fleet_jobs_tenant_created'"
        ).fetchall()
    assert definition.endswith("ON public.fleet_jobs USING btree (tenant, created_at)")


def test_a_store_at_0002_gets_the_tenant_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a store migrated by the Fleetlog before quotas (0001 and 0002 only)
    path = tmp_path / "f.db"
    original = m.migrations
    monkeypatch.setattr(m, "migrations", lambda backend: original(backend)[:2])
    m.migrate_sqlite(path)
    assert "fleet_tenants" not in sqlite_columns(path)
    # When this Fleetlog migrates it / Then only what came after 0002 is applied
    monkeypatch.setattr(m, "migrations", original)
    applied = [(x.version, x.name) for x in m.migrate_sqlite(path)]
    assert applied == [(3, "tenant_quotas"), (4, "analytics_positions"), (5, "hand_over_guard")]
    assert set(sqlite_columns(path)) == EXPECTED_TABLES
