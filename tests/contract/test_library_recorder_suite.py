"""The eventsourcing library's own recorder test suite, run against Fleetlog's recorder
subclasses on both backends.

Fleetlog's recorders override two library hooks (``_insert_events`` to write views in
the append transaction, and, on PostgreSQL, ``_insert_stored_events`` to send events as
binary column arrays). This proves the library's contract still holds: inserts, version
conflicts, notification order and gap-free, non-interleaving notification ids under
concurrent writers.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)

from adapters.eventstore.application import EVENTS_TABLE
from adapters.store.migrate import migrate_sqlite
from adapters.store.postgres import FleetPostgresRecorder
from adapters.store.sqlite import FleetSQLiteRecorder
from tests.support import fresh_pg_database


def _join_stray_threads() -> None:
    # The library's concurrency test sets its readers' stop flag but does not join them;
    # closing the datastore under a still-running reader is undefined behaviour in sqlite3.
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(timeout=10)


class _SQLiteRecorderMixin:
    tmp: Path

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> Any:
        path = tmp_path / "fleetlog.db"
        migrate_sqlite(path)
        self.datastore = SQLiteDatastore(str(path), lock_timeout=30)
        yield
        _join_stray_threads()
        self.datastore.close()

    def create_recorder(self) -> FleetSQLiteRecorder:
        return FleetSQLiteRecorder(self.datastore, events_table_name=EVENTS_TABLE)


class _PostgresRecorderMixin:
    @pytest.fixture(autouse=True)
    def _database(self, pg_template: str) -> Any:
        with fresh_pg_database(pg_template) as url:
            dbname = url.rsplit("/", 1)[1]
            self.datastore = PostgresDatastore(
                dbname, "127.0.0.1", 5432, "postgres", "", pool_size=4, max_overflow=12
            )
            yield
            _join_stray_threads()
            self.datastore.close()

    def create_recorder(self) -> FleetPostgresRecorder:
        return FleetPostgresRecorder(self.datastore, events_table_name=EVENTS_TABLE)


class TestSQLiteRecorder(_SQLiteRecorderMixin, ApplicationRecorderTestCase[Any]):
    # SQLite rowids can skip numbers after a rolled-back insert, as in the library's own suite.
    EXPECT_CONTIGUOUS_NOTIFICATION_IDS = False

    def test_concurrent_throughput(self) -> None:
        pytest.skip("a timing printout, not a check")

    def test_performance(self) -> None:
        pytest.skip("a timing printout, not a check")


class TestSQLiteNonInterleaving(_SQLiteRecorderMixin, NonInterleavingNotificationIDsBaseCase):
    pass


@pytest.mark.postgres
class TestPostgresRecorder(_PostgresRecorderMixin, ApplicationRecorderTestCase[Any]):
    def test_concurrent_throughput(self) -> None:
        pytest.skip("a timing printout, not a check")

    def test_performance(self) -> None:
        pytest.skip("a timing printout, not a check")


@pytest.mark.postgres
class TestPostgresNonInterleaving(_PostgresRecorderMixin, NonInterleavingNotificationIDsBaseCase):
    pass


@pytest.mark.postgres
@pytest.mark.parametrize("count", [3, 300])
def test_fleetlogs_append_path_keeps_the_contract(pg_template: str, count: int) -> None:
    # Given a batch (large enough, or not, to take the COPY path of FleetPostgresRecorder.write)
    with fresh_pg_database(pg_template) as url:
        dbname = url.rsplit("/", 1)[1]
        datastore = PostgresDatastore(dbname, "127.0.0.1", 5432, "postgres", "", pool_size=1)
        try:
            recorder = FleetPostgresRecorder(datastore, events_table_name=EVENTS_TABLE)
            from uuid import uuid4

            from projections.changes import ViewChanges

            ids = [uuid4() for _ in range(count)]
            events = [StoredEvent(originator_id=i, originator_version=1, topic="t", state=b"{}") for i in ids]
            # When they are written in one of Fleetlog's units of work
            from adapters.store.postgres import PgCursor

            with datastore.get_connection() as conn:
                cursor = PgCursor(conn)
                recorder.write(cursor, events, ViewChanges())
                cursor.commit()
            # Then every event is readable, in order, with gap-free notification ids
            notes = recorder.select_notifications(start=None, limit=1000)
            assert [n.originator_id for n in notes] == ids
            assert [n.id for n in notes] == list(range(notes[0].id, notes[0].id + count))
            # And a conflicting version is still refused by the primary key
            from eventsourcing.persistence import IntegrityError

            with pytest.raises(IntegrityError):
                recorder.insert_events([events[0]])
        finally:
            datastore.close()
