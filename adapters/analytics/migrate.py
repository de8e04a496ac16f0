"""Applying ``migrations/clickhouse/NNNN_name.sql`` to a database, and swapping a rebuilt
database's tables in.

Applied versions are recorded in ``<database>.schema_migrations`` (version, name,
checksum of the template text, applied_at). ClickHouse has no DDL transactions: every
statement is idempotent, a migration is recorded after its last statement, and one cut
short re-runs whole. Two migrators racing both succeed; the tracking table collapses
their rows (ReplacingMergeTree, read with FINAL). In cluster mode it is replicated
within a shard: a migrator that lands on another shard re-runs the (idempotent)
statements and records them there.
"""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from adapters.analytics.client import IDENTIFIER, AnalyticsSettings
from adapters.analytics.errors import driver_errors
from adapters.analytics.templating import render
from adapters.store.migrate import MigrationError, migrations

TRACKING = "schema_migrations"
_CREATE_DATABASE = "CREATE DATABASE IF NOT EXISTS {db} {on_cluster};\n"
_TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS {db}.schema_migrations {on_cluster}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(6, 'UTC')
)
ENGINE = {engine:ReplacingMergeTree}
ORDER BY version;
"""


def migrate_clickhouse(client: Client, settings: AnalyticsSettings) -> list[str]:
    """Apply the pending migrations to the live database; returns ``NNNN_name`` of each
    one applied (none on a second call)."""
    return create_schema(client, settings, settings.database)


def create_schema(client: Client, settings: AnalyticsSettings, database: str) -> list[str]:
    """Create ``database`` if needed and apply the pending migrations to it: the live
    database, or a fresh one a rebuild fills before ``swap_in``."""
    with driver_errors(settings.describe(), f"migrating database {database}"):
        for statement in render(_CREATE_DATABASE + _TRACKING_DDL, database, settings.cluster):
            client.command(statement)
        applied = applied_versions(client, database)
        _check_applied(applied, database)
        done = []
        for m in migrations("clickhouse"):
            if m.version in applied:
                continue
            for statement in render(m.sql, database, settings.cluster):
                client.command(statement)
            client.insert(
                TRACKING,
                [(m.version, m.name, m.checksum, datetime.now(UTC))],
                column_names=("version", "name", "checksum", "applied_at"),
                database=database,
            )
            done.append(f"{m.version:04d}_{m.name}")
    return done


def applied_versions(client: Client, database: str) -> dict[int, str]:
    """Version -> checksum of every migration recorded in ``database``."""
    rows = client.query(
        f"SELECT version, argMax(checksum, applied_at) FROM {database}.{TRACKING} GROUP BY version"
    ).result_rows
    return {int(version): str(checksum) for version, checksum in rows}


def _check_applied(applied: dict[int, str], database: str) -> None:
    known = {m.version: m for m in migrations("clickhouse")}
    for version, checksum in sorted(applied.items()):
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"ClickHouse database {database} has migration {version:04d}, which this "
                "Fleetlog does not know: it was migrated by a newer version; upgrade Fleetlog"
            )
        if m.checksum != checksum:
            raise MigrationError(
                f"ClickHouse migration {version:04d}_{m.name} changed after it was applied to "
                f"{database}; migrations are forward-only: restore the file and add a new one"
            )


def swap_in(client: Client, settings: AnalyticsSettings, fresh_db: str) -> list[str]:
    """Make ``fresh_db``'s tables the live ones; returns the tables swapped.

    ``EXCHANGE TABLES live.t AND fresh.t`` for every table that stores rows (raw tables
    and the aggregates' targets; in cluster mode the ``_local`` ones). The live
    database's materialized views, views and Distributed tables stay where they are:
    ClickHouse resolves their source, target and underlying tables by name when rows
    arrive or a query runs, so they read and feed the swapped-in tables at once (a test
    inserts after the swap and checks the aggregates). ``RENAME DATABASE`` would not do:
    a view's stored query names its database, and it does not follow a rename.

    Each pair is exchanged atomically, the set is not: stop the consumer while swapping.
    Afterwards ``fresh_db`` holds the previous tables (and views feeding them); drop it
    with ``drop_schema`` once satisfied.
    """
    live = settings.database
    if not IDENTIFIER.match(fresh_db) or fresh_db == live:
        raise MigrationError(f"cannot swap {fresh_db!r} into {live}: name another database")
    with driver_errors(settings.describe(), f"swapping {fresh_db} into {live}"):
        if applied_versions(client, fresh_db) != applied_versions(client, live):
            raise MigrationError(f"{fresh_db} and {live} are at different migrations: migrate both first")
        tables = storage_tables(client, fresh_db)
        client.command(exchange_statement(live, fresh_db, tables, settings.cluster))
    return tables


def exchange_statement(live: str, fresh: str, tables: list[str], cluster: str | None) -> str:
    pairs = ", ".join(f"{live}.{t} AND {fresh}.{t}" for t in tables)
    on_cluster = "" if cluster is None else f" ON CLUSTER '{cluster}'"
    return f"EXCHANGE TABLES {pairs}{on_cluster}"


def storage_tables(client: Client, database: str) -> list[str]:
    """The tables of ``database`` that hold rows (MergeTree family), bar the tracking table."""
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' "
        "AND name != {tracking:String} ORDER BY name",
        parameters={"db": database, "tracking": TRACKING},
    ).result_rows
    return [str(name) for (name,) in rows]


def drop_schema(client: Client, settings: AnalyticsSettings, database: str) -> None:
    """Drop a rebuild's database (never the live one), with everything in it."""
    if not IDENTIFIER.match(database) or database == settings.database:
        raise MigrationError(f"refusing to drop {database!r}: only a rebuild's database is dropped")
    with driver_errors(settings.describe(), f"dropping database {database}"):
        on_cluster = "" if settings.cluster is None else f" ON CLUSTER '{settings.cluster}'"
        client.command(f"DROP DATABASE IF EXISTS {database}{on_cluster} SYNC")
