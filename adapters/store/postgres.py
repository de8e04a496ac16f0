"""PostgreSQL backend: the library's recorder extended with Fleetlog's views, and the store.

Write transactions lock the rows they read (``FOR UPDATE``, ``SKIP LOCKED`` for claims
and reaping), write views and then append events through the library's recorder, which
takes its table lock last: lock order is always view rows, then the events table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

import psycopg
import psycopg.errors
import psycopg_pool
from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from psycopg.rows import DictRow

from adapters.eventstore.application import EVENTS_TABLE
from adapters.sql import queries
from adapters.store.codecs import utc
from adapters.store.sql_store import SqlStore
from adapters.store.view_writer import apply_changes
from coordinator.errors import Conflict, Unavailable
from projections.changes import ViewChanges

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


class PgCursor:
    """Named queries over one psycopg cursor."""

    values = PgValues()

    def __init__(self, cursor: psycopg.Cursor[DictRow]):
        self.cursor = cursor
        self.sql = queries("postgres")

    def fetch(self, query: str, **params: Any) -> list[Any]:
        self.cursor.execute(self.sql[query], {k: _param(v) for k, v in params.items()})
        return self.cursor.fetchall()

    def execute(self, query: str, **params: Any) -> None:
        self.cursor.execute(self.sql[query], {k: _param(v) for k, v in params.items()})

    def write_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        # One statement per table per transaction: the rows travel as column arrays.
        columns = {key: [row[key] for row in rows] for key in rows[0]}
        self.cursor.execute(self.sql[query], columns)


class FleetPostgresRecorder(PostgresApplicationRecorder):
    """The library's application recorder; ``_insert_events`` writes Fleetlog's views in
    the append transaction, as in the library's searchable-content example."""

    def _insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        views: ViewChanges | None = kwargs.get("views")
        if views is not None:
            apply_changes(PgCursor(curs), views)

    def write(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], views: ViewChanges
    ) -> None:
        """Append within the caller's transaction: views first, then the library's
        table lock, NOTIFY and insert (the same steps ``insert_events`` takes)."""
        self._insert_events(curs, stored_events, views=views)
        if stored_events:
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
        "POSTGRES_CONNECT_TIMEOUT": "30",
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
        conn = cursor.cursor.connection
        # Pipeline the writes: one round trip for views, lock, NOTIFY and insert, so the
        # events-table lock (which serialises all appends) is held as briefly as possible.
        with conn.pipeline():
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
