"""Writing the analytics fold's rows to ClickHouse, and what the consumer, the verifier
and ``fleetlog analytics sql`` read back.

Exactly once in effect (docs/analytics-design.md): ``write`` makes one INSERT per
table, each tagged ``<token>:<table>``. A retried batch (same token) is dropped by
ClickHouse table by table, and with ``deduplicate_blocks_in_dependent_materialized_views``
the views' targets drop their blocks too; the tables keep a deduplication window
(see the migrations). Per-table tokens keep one table's retry from being taken for
another's block in an aggregate that two views feed (``tenant_hourly``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from adapters.analytics.client import IDENTIFIER, AnalyticsSettings
from adapters.analytics.errors import driver_errors
from adapters.analytics.readonly import check_read_only, readonly_settings
from coordinator.ports import PartsPressure

RAW_TABLES = ("fleet_events", "job_runs", "run_insights", "jobs_latest")
"""The tables the fold writes (the aggregates are fed by ClickHouse)."""

_PRESSURE = """
SELECT
    (SELECT max(n) FROM (SELECT count() AS n FROM {parts} WHERE active AND database = {{db:String}}
                         GROUP BY hostName(), table, partition_id)),
    (SELECT count() FROM {merges} WHERE database = {{db:String}})
"""


class ClickHouseSink:
    """One database's tables: the live one, or a rebuild's fresh one (``database``)."""

    def __init__(self, client: Client, settings: AnalyticsSettings, database: str | None = None):
        self.database = database or settings.database
        if not IDENTIFIER.match(self.database):
            raise ValueError(f"not a database name: {self.database!r}")
        self._client = client
        self._settings = settings
        self._types: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    def write(
        self, batch: Mapping[str, Sequence[Sequence[Any]]], columns: Mapping[str, Sequence[str]], token: str
    ) -> None:
        """One INSERT per non-empty table, rows in ``columns[table]`` order. Idempotent per
        ``token``: write the same batch again after a failure, never a different one."""
        for table, rows in batch.items():
            if not rows:
                continue
            if not IDENTIFIER.match(table):
                raise ValueError(f"not a table name: {table!r}")
            names = tuple(columns[table])
            with self._errors(f"writing {len(rows)} row(s) to {self.database}.{table}"):
                self._client.insert(
                    table,
                    rows,
                    column_names=names,
                    database=self.database,
                    column_type_names=self._column_types(table, names),
                    settings=self._insert_settings(f"{token}:{table}"),
                )

    def pressure(self) -> PartsPressure:
        """The most active parts in one partition of this database's tables, and merges
        running, from system.parts and system.merges (every replica's in cluster mode):
        the consumer slows down before inserts fail with TOO_MANY_PARTS."""
        cluster = self._settings.cluster
        sql = _PRESSURE.format(
            parts="system.parts" if cluster is None else f"clusterAllReplicas('{cluster}', system.parts)",
            merges="system.merges" if cluster is None else f"clusterAllReplicas('{cluster}', system.merges)",
        )
        with self._errors("reading merge pressure"):
            rows = self._client.query(sql, parameters={"db": self.database}).result_rows
        parts, running = rows[0]
        return PartsPressure(active_parts_max=int(parts or 0), merges_running=int(running or 0))

    def row_counts(self) -> dict[str, int]:
        """Rows per raw table, as merged (FINAL: a row written twice counts once)."""
        sql = " UNION ALL ".join(f"SELECT '{t}', count() FROM {self.database}.{t} FINAL" for t in RAW_TABLES)
        with self._errors("counting rows"):
            rows = self._client.query(sql).result_rows
        return {str(table): int(n) for table, n in rows}

    def version_ranges(self, tenant: str | None = None) -> dict[UUID, tuple[int, int, int]]:
        """originator_id -> (min version, max version, events) in fleet_events, merged
        (FINAL), for one tenant or all: the verifier compares them with the event log."""
        sql = (
            f"SELECT originator_id, min(version), max(version), count() FROM {self.database}.fleet_events "
            "FINAL WHERE {tenant:Nullable(String)} IS NULL OR tenant = {tenant:Nullable(String)} "
            "GROUP BY originator_id"
        )
        with self._errors("reading version ranges"):
            rows = self._client.query(sql, parameters={"tenant": tenant}).result_rows
        return {UUID(str(oid)): (int(lo), int(hi), int(n)) for oid, lo, hi, n in rows}

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only statement (``fleetlog analytics sql``): (column names, rows).
        Anything but a reading statement is refused before it reaches ClickHouse."""
        with self._errors("running the query", user_sql=True):
            check_read_only(self._client, sql)
            result = self._client.query(
                sql, parameters=dict(parameters or {}), settings=readonly_settings(self._client)
            )
            return list(result.column_names), [tuple(row) for row in result.result_rows]

    def _column_types(self, table: str, names: tuple[str, ...]) -> list[str]:
        """The columns' ClickHouse types, read once per table: clickhouse-connect would
        otherwise DESCRIBE the table before every insert (a round trip per table per batch)."""
        key = (table, names)
        if key not in self._types:
            rows = self._client.query(
                "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
                parameters={"db": self.database, "t": table},
            ).result_rows
            found = {str(name): str(kind) for name, kind in rows}
            missing = [n for n in names if n not in found]
            if missing:
                raise ValueError(f"{self.database}.{table} has no column(s) {missing}: migrate first")
            self._types[key] = [found[n] for n in names]
        return self._types[key]

    def _insert_settings(self, token: str) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "insert_deduplicate": 1,
            "insert_deduplication_token": token,
            "deduplicate_blocks_in_dependent_materialized_views": 1,
            # Async inserts buffer and deduplicate differently; a batch must land (or be
            # dropped as a duplicate) before its position moves.
            "async_insert": 0,
        }
        if self._settings.cluster is not None:
            # Into the shards before returning, each shard insert carrying the token.
            settings["distributed_foreground_insert"] = 1
        return settings

    @contextmanager
    def _errors(self, what: str, *, user_sql: bool = False) -> Iterator[None]:
        with driver_errors(self._settings.describe(), what, user_sql=user_sql):
            yield
