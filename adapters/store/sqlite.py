"""SQLite backend (the embedded default): the library's recorder extended with
Fleetlog's views, and the store.

Write transactions begin with ``BEGIN IMMEDIATE``: the database write lock is taken
before the first read, so a claim's read-then-append cannot interleave with another
writer, in this process or any other sharing the file (claims are compare-and-set by
construction; no SKIP LOCKED needed).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing import persistence as es
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore, SQLiteFactory

from adapters.eventstore.application import EVENTS_TABLE
from adapters.sql import queries
from adapters.store.leader import FileLock
from adapters.store.signals import LOG_POLL_SECONDS, PollBackoff
from adapters.store.sql_store import SqlStore, translated
from adapters.store.view_writer import apply_changes
from coordinator.errors import Conflict, GuessMissed, Unavailable
from coordinator.ports import WorkSignal
from projections.changes import ViewChanges


def iso(dt: datetime) -> str:
    """UTC, microseconds, fixed width: such strings sort in time order."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteValues:
    def uuid(self, v: Any) -> UUID:
        return v if isinstance(v, UUID) else UUID(str(v))

    def ts(self, v: Any) -> datetime:
        return datetime.fromisoformat(v)

    def strings(self, v: Any) -> tuple[str, ...]:
        return tuple(json.loads(v))

    def boolean(self, v: Any) -> bool:
        return bool(v)


def _encode(v: Any) -> Any:
    if isinstance(v, UUID):
        return str(v)
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, list | tuple):
        return json.dumps([_encode(x) for x in v])
    return v


class SqliteCursor:
    values = SqliteValues()

    def __init__(self, cursor: SQLiteCursor):
        self.cursor = cursor
        self.sql = queries("sqlite")

    def fetch(self, query: str, **params: Any) -> list[Any]:
        self.cursor.execute(self.sql[query], {k: _encode(v) for k, v in params.items()})
        return list(self.cursor.fetchall())

    def fetch_many(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
        return [self.fetch(query, **params) for query, params in calls]

    def execute(self, query: str, **params: Any) -> None:
        for statement in self.sql[query].split(";"):
            if statement.strip():
                self.cursor.execute(statement, {k: _encode(v) for k, v in params.items()})

    def guard(self, query: str, **params: Any) -> None:
        """Checked at once (no round trips to save): the query answers one row whose
        ``ok`` says whether the check passed."""
        rows = self.fetch(query, **params)
        if not rows or not rows[0]["ok"]:
            raise GuessMissed(f"{query}: {params}")

    def write_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        self.cursor.executemany(self.sql[query], [{k: _encode(v) for k, v in row.items()} for row in rows])


class FleetSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's application recorder; ``_insert_events`` also writes Fleetlog's
    views in the same transaction."""

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        views: ViewChanges | None = kwargs.get("views")
        if views is not None:
            apply_changes(SqliteCursor(c), views)
        return ids

    def write(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], views: ViewChanges) -> None:
        """Append within the caller's (already begun) transaction."""
        self._insert_events(c, stored_events, views=views)


class FleetSQLiteFactory(SQLiteFactory):
    def application_recorder(self) -> es.ApplicationRecorder:
        return FleetSQLiteRecorder(self.datastore, events_table_name=EVENTS_TABLE)


def sqlite_env(path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "adapters.store.sqlite:FleetSQLiteFactory",
        "SQLITE_DBNAME": str(path),
        # Seconds a writer waits for another process's write lock before giving up.
        "SQLITE_LOCK_TIMEOUT": "30",
    }


def _translate(exc: BaseException) -> Exception | None:
    """The one choke point where driver errors become coordinator errors."""
    if isinstance(exc, sqlite3.IntegrityError | es.IntegrityError):
        return Conflict(str(exc))
    if isinstance(exc, sqlite3.Error | es.PersistenceError):
        return Unavailable(str(exc) or type(exc).__name__)
    return None


class SQLiteStore(SqlStore):
    backend = "sqlite"

    def __init__(self, path: Path):
        super().__init__(sqlite_env(path))
        self.path = path
        self.datastore: SQLiteDatastore = self.app.recorder.datastore  # type: ignore[attr-defined]
        self.recorder: FleetSQLiteRecorder = self.app.recorder  # type: ignore[assignment]

    def _guard(self) -> AbstractContextManager[None]:
        return translated(_translate)

    @contextmanager
    def _transaction(self) -> Iterator[SqliteCursor]:
        with self._guard(), self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteCursor(cursor)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def _reader(self) -> Iterator[SqliteCursor]:
        with self._guard(), self.datastore.transaction(commit=False) as cursor:
            yield SqliteCursor(cursor)

    def _commit_writes(self, cursor: SqliteCursor, stored: list[StoredEvent], views: ViewChanges) -> None:
        self.recorder.write(cursor.cursor, stored, views)

    def ping(self) -> None:
        with self._reader() as c:
            c.cursor.execute("SELECT 1")

    def loop_commits(self) -> None:
        # SQLite's calls block the thread that makes them: every unit of work runs on a
        # thread of its own.
        return None

    def work_signal(self, queues: Collection[str] | None = None) -> WorkSignal:
        # SQLite cannot notify another process: poll, backing off while idle.
        return PollBackoff()

    def log_signal(self) -> WorkSignal:
        return PollBackoff(maximum=LOG_POLL_SECONDS)

    def leader_lock(self, name: str) -> FileLock:
        return FileLock(self.path.parent / f"{name}.leader.lock")
