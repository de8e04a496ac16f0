"""PostgreSQL backend: the library's recorder extended with Fleetlog's views, and the store.

Write transactions lock the rows they read (``FOR UPDATE``, ``SKIP LOCKED`` for claims
and reaping), write views and then append events through the library's recorder, which
takes its table lock last: lock order is always view rows, then the events table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

import psycopg
import psycopg.errors
import psycopg_pool
from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from psycopg import pq
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from adapters.eventstore.application import EVENTS_TABLE
from adapters.sql import queries
from adapters.store.codecs import utc
from adapters.store.signals import QUEUE_CHANNEL, PgListener
from adapters.store.sql_store import SqlStore
from adapters.store.view_writer import apply_changes
from coordinator.errors import Conflict, Unavailable
from coordinator.ports import WorkSignal
from projections.changes import ViewChanges, newly_claimable_queues

# Errors a re-run of the same transaction can cure.
_RETRYABLE = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.UniqueViolation,
)


class PgValues:
    """psycopg returns UUIDs, aware datetimes, lists and booleans natively."""

    def uuid(self, v: Any) -> UUID:
        return v if isinstance(v, UUID) else UUID(str(v))

    def ts(self, v: Any) -> datetime:
        return utc(v)

    def strings(self, v: Any) -> tuple[str, ...]:
        return tuple(v)

    def boolean(self, v: Any) -> bool:
        return bool(v)


def _param(value: Any) -> Any:
    # psycopg adapts lists (not tuples) to arrays.
    return list(value) if isinstance(value, tuple) else value


def _in_pipeline(curs: psycopg.Cursor[Any]) -> bool:
    return curs.connection.info.pipeline_status != pq.PipelineStatus.OFF


def _column(values: list[Any]) -> list[Any]:
    # A column of string arrays travels as JSON text: unnest() cannot take an array of
    # arrays of different lengths (the queries turn it back with jsonb_array_elements_text).
    if values and isinstance(values[0], tuple):
        return [json.dumps(list(v)) for v in values]
    return values


COPY_MIN_ROWS = 64
"""From this many rows on, inserts stream through binary COPY instead of unnest arrays."""

COPY_INSERTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "insert_jobs": (
        "fleet_jobs",
        (
            ("job_id", "uuid"),
            ("tenant", "text"),
            ("state", "text"),
            ("kind", "text"),
            ("queue", "text"),
            ("priority", "int4"),
            ("idempotency_key", "text"),
            ("parent_id", "uuid"),
            ("phase", "text"),
            ("epoch", "int8"),
            ("attempt", "int4"),
            ("version", "int8"),
            ("created_at", "timestamptz"),
            ("updated_at", "timestamptz"),
            ("available_at", "timestamptz"),
            ("lease_factory_id", "text"),
            ("lease_expires_at", "timestamptz"),
            ("spec", "text"),
            ("snapshot", "text"),
        ),
    ),
    "insert_queue": (
        "fleet_queue",
        (
            ("job_id", "uuid"),
            ("tenant", "text"),
            ("queue", "text"),
            ("priority", "int4"),
            ("state", "text"),
            ("available_at", "timestamptz"),
            ("capabilities", "text[]"),
            ("has_deps", "bool"),
        ),
    ),
    "insert_idempotency": (
        "fleet_idempotency",
        (
            ("tenant", "text"),
            ("key", "text"),
            ("job_id", "uuid"),
            ("content_hash", "text"),
        ),
    ),
    "insert_edges": (
        "fleet_dependencies",
        (
            ("job_id", "uuid"),
            ("depends_on", "uuid"),
            ("mode", "text"),
            ("milestone", "text"),
        ),
    ),
}


@cache
def _binary_queries() -> dict[str, str]:
    """The named queries with binary placeholders (%(x)b): psycopg then dumps arrays in
    binary, skipping the per-element escaping of the text format."""
    return {name: _PLACEHOLDER.sub(r"%(\1)b", sql) for name, sql in queries("postgres").items()}


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class PgCursor:
    """Named queries over one psycopg cursor."""

    values = PgValues()

    def __init__(self, cursor: psycopg.Cursor[DictRow]):
        self.cursor = cursor
        self.sql = queries("postgres")
        self.binary_sql = _binary_queries()

    def fetch(self, query: str, **params: Any) -> list[Any]:
        self.cursor.execute(self.sql[query], {k: _param(v) for k, v in params.items()})
        return self.cursor.fetchall()

    def execute(self, query: str, **params: Any) -> None:
        self.cursor.execute(self.sql[query], {k: _param(v) for k, v in params.items()})

    def write_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        if query in COPY_INSERTS and len(rows) >= COPY_MIN_ROWS and not _in_pipeline(self.cursor):
            self._copy(query, rows)
            return
        # One statement per table per transaction: the rows travel as column arrays, in
        # binary (text-format arrays cost psycopg a regex escape per element).
        columns = {key: _column([row[key] for row in rows]) for key in rows[0]}
        self.cursor.execute(self.binary_sql[query], columns)

    def _copy(self, query: str, rows: list[dict[str, Any]]) -> None:
        table, columns = COPY_INSERTS[query]
        names = [name for name, _ in columns]
        statement = f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
        with self.cursor.copy(statement) as copy:
            copy.set_types([kind for _, kind in columns])
            for row in rows:
                copy.write_row([_param(row[name]) for name in names])


class FleetPostgresRecorder(PostgresApplicationRecorder):
    """The library's application recorder; ``_insert_events`` writes Fleetlog's views in
    the append transaction, as in the library's searchable-content example.

    The insert itself keeps the library's steps (table lock, NOTIFY, insert returning
    notification ids) but sends the events as four binary column arrays instead of one
    text array of composites, whose escaping cost ~30 us per event in psycopg; a large
    batch appended through ``write`` streams with binary COPY. The library's own
    recorder test suite runs against this class (tests/contract).
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        table = SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self._insert_arrays = SQL(
            "INSERT INTO {0} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(table)
        self._lock_and_notify_sql = SQL("; ").join(
            [*self.lock_table_statements, SQL("NOTIFY {0}").format(Identifier(self.channel_name))]
        )
        self._copy_events = SQL(
            "COPY {0} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(table)

    def _lock_and_notify(self, curs: psycopg.Cursor[DictRow]) -> None:
        if _in_pipeline(curs):
            # The library's own insert_events runs in a pipeline: keep its statements.
            self._lock_table(curs)
            self._notify_channel(curs)
        else:
            # The same statements sent as one simple-protocol query: one round trip
            # instead of three while the table lock is held.
            curs.execute(self._lock_and_notify_sql)

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_and_notify(curs)
        curs.execute(
            self._insert_arrays,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _copy_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent]
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        with curs.copy(self._copy_events) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for e in stored_events:
                copy.write_row((e.originator_id, e.originator_version, e.topic, e.state))

    def _insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        views: ViewChanges | None = kwargs.get("views")
        if views is not None:
            apply_changes(PgCursor(curs), views)
            queues = newly_claimable_queues(views)
            if queues:
                # Delivered at commit, once per transaction, to workers LISTENing for work.
                curs.execute("SELECT pg_notify(%s, %s)", (QUEUE_CHANNEL, ",".join(sorted(queues))))

    def write(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], views: ViewChanges
    ) -> None:
        """Append within the caller's transaction: views first, then the library's
        table lock, NOTIFY and insert (the same steps ``insert_events`` takes)."""
        self._insert_events(curs, stored_events, views=views)
        if len(stored_events) >= COPY_MIN_ROWS and not _in_pipeline(curs):
            self._copy_stored_events(curs, stored_events)
        elif stored_events:
            self._insert_stored_events(curs, stored_events)


class FleetPostgresFactory(PostgresFactory):
    def application_recorder(self) -> es.ApplicationRecorder:
        return FleetPostgresRecorder(self.datastore, events_table_name=EVENTS_TABLE)


def postgres_env(url: str, pool_size: int = 5, max_overflow: int = 10) -> dict[str, str]:
    """The library's PostgreSQL settings from a ``postgresql://`` URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"DATABASE_URL must start with postgresql:// (got {parsed.scheme}://)")
    dbname = parsed.path.lstrip("/")
    if not dbname:
        raise ValueError("DATABASE_URL names no database: use postgresql://user@host:5432/dbname")
    return {
        "PERSISTENCE_MODULE": "adapters.store.postgres:FleetPostgresFactory",
        "POSTGRES_DBNAME": unquote(dbname),
        "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": unquote(parsed.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parsed.password or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(max_overflow),
        # Seconds to wait for a pooled connection (the library calls it a connect timeout).
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_PRE_PING": "y",
    }


def _translate(exc: BaseException) -> Exception | None:
    """The one choke point where driver errors become coordinator errors."""
    cause = exc.__cause__ if isinstance(exc, es.PersistenceError) else exc
    if isinstance(cause, _RETRYABLE) or isinstance(exc, es.IntegrityError):
        return Conflict(str(exc).strip())
    if isinstance(exc, es.PersistenceError | psycopg.Error | psycopg_pool.PoolTimeout):
        return Unavailable(str(exc).strip() or type(exc).__name__)
    return None


class PostgresStore(SqlStore):
    backend = "postgres"

    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 10):
        super().__init__(postgres_env(url, pool_size, max_overflow))
        self.url = url
        self.datastore: PostgresDatastore = self.app.recorder.datastore  # type: ignore[attr-defined]
        self.recorder: FleetPostgresRecorder = self.app.recorder  # type: ignore[assignment]

    @contextmanager
    def _transaction(self) -> Iterator[PgCursor]:
        try:
            with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cur:
                cursor = PgCursor(cur)
                yield cursor
        except Exception as exc:
            translated = _translate(exc)
            if translated is None:
                raise
            raise translated from exc

    def _commit_writes(self, cursor: PgCursor, stored: list[StoredEvent], views: ViewChanges) -> None:
        # Not pipelined: measured, psycopg's pipeline mode cost more CPU than the round
        # trips it saved; the statements under the events-table lock are already few.
        self.recorder.write(cursor.cursor, stored, views)

    @contextmanager
    def _reader(self) -> Iterator[PgCursor]:
        with self._transaction() as cursor:
            yield cursor

    @contextmanager
    def _snapshot(self) -> Iterator[PgCursor]:
        with self._transaction() as cursor:
            cursor.cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield cursor

    def ping(self) -> None:
        with self._reader() as cursor:
            cursor.cursor.execute("SELECT 1")

    def work_signal(self, queues: Collection[str] | None = None) -> WorkSignal:
        return PgListener(self.url, QUEUE_CHANNEL, queues)
