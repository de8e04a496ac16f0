"""PostgreSQL backend: the library's recorder extended with Fleetlog's views, and the store.

Write transactions lock the rows they read (``FOR UPDATE``, ``SKIP LOCKED`` for claims
and reaping), write views and then append events through the library's recorder, which
takes its table lock last: lock order is always view rows, then the events table.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any
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
from psycopg.sql import SQL, Composable, Composed, Identifier
from pydantic_core import to_json

from adapters.eventstore.application import EVENTS_TABLE
from adapters.sql import queries
from adapters.store.codecs import Values, utc
from adapters.store.leader import PgAdvisoryLock
from adapters.store.prepared import SESSIONS, AnyConnection, prepared_query
from adapters.store.signals import LOG_POLL_SECONDS, QUEUE_CHANNEL, PgListener, PollBackoff
from adapters.store.sql_store import SqlStore, translated
from adapters.store.view_writer import apply_changes
from coordinator.errors import Conflict, GuessMissed, Unavailable
from coordinator.ports import WorkSignal
from projections.changes import ViewChanges, newly_claimable_queues

if TYPE_CHECKING:
    from adapters.store.loop_commits import PgLoopCommits

GUARD_FAILED = "FL001"
"""SQLSTATE of a failed ``guard`` (migration 0005's ``fleet_hand_over_guard``)."""

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


COPY_MIN_ROWS = 64
"""From this many rows on, inserts stream through binary COPY instead of a JSON document."""

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


WRITE_BEGIN = ("BEGIN", "SET LOCAL enable_seqscan = off", "SET LOCAL enable_sort = off")
"""How a write transaction starts. Every statement a unit of work runs has an index
path (primary keys, the queue's ordered indexes, the lease indexes), but the tables
churn faster than statistics follow (CI runs PostgreSQL with autovacuum off): with stale
statistics the planner would scan a whole queue to delete one row, or sort every
eligible row for each claim (measured: 42 ms instead of 0.3 ms per claim at 5,000 queued
jobs). Transaction-local, and sent with BEGIN: no extra round trip."""


class PgStatements:
    """A unit of work's statements as they are bound and queued, before a round trip
    sends them: named queries as ``EXECUTE`` of their prepared statements with values
    bound client-side (``mogrify`` on ``cur``), statements that return nothing queued
    until something is sent. ``PgCursor`` sends them from a thread; ``LoopCursor``
    (``loop_commits.py``) from an event loop."""

    values: Values = PgValues()

    def __init__(self, conn: AnyConnection, cur: Any, *, begin: Sequence[str] | None, prepared: bool):
        self.conn = conn
        self.cur = cur
        """A client-side binding cursor on ``conn`` (sync or async: ``mogrify`` is sync)."""
        self._prepared = prepared
        # Named queries are prepared by name (prepared.py); psycopg's own automatic
        # preparing would answer a ROLLBACK with DEALLOCATE ALL and drop them.
        conn.prepare_threshold = None
        self.sql = queries("postgres")
        self._begin = begin
        """None: no transaction (each read is its own autocommit statement)."""
        self._begun = False
        self._pending: list[str] = []
        self._to_prepare: list[str] = []
        """Named queries bound since the last round trip (prepared first if need be)."""

    def _bind(self, query: str, params: dict[str, Any]) -> str:
        """``EXECUTE`` of the named query's prepared statement, its values bound client-side."""
        prepared = prepared_query(query) if self._prepared else None
        if prepared is None:  # turned off, or LOCK, TRUNCATE: not preparable
            sql = self.sql[query]
            return str(self.cur.mogrify(sql, {k: _param(v) for k, v in params.items()})) if params else sql
        self._to_prepare.append(query)
        if not prepared.params:
            return prepared.execute
        return str(self.cur.mogrify(prepared.execute, [_param(params[name]) for name in prepared.params]))

    def execute(self, query: str, **params: Any) -> None:
        self._pending.append(self._bind(query, params))

    def guard(self, query: str, **params: Any) -> None:
        """Queued like ``execute``: it runs in the commit's round trip, ahead of the
        writes queued after it; a failed check raises SQLSTATE ``GUARD_FAILED``."""
        self.execute(query, **params)

    def add(self, statement: str) -> None:
        """Queue a statement already bound (lock, NOTIFY)."""
        self._pending.append(statement)

    def write_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        if query in COPY_INSERTS and len(rows) >= COPY_MIN_ROWS:
            self._copy(query, rows)
        else:
            self.execute(query, rows=to_json(rows).decode())

    def _copy(self, query: str, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def copy_events(self, statement: Composed, stored_events: Sequence[StoredEvent]) -> None:
        """Stream ``stored_events`` through ``statement`` (a binary COPY), after what is queued."""
        raise NotImplementedError

    def _batch(self, statements: list[str]) -> tuple[list[str], int]:
        """What is queued, then ``statements``, as one round trip's statements (with the
        transaction's BEGIN and the PREPAREs they need first); how many go before
        ``statements``. Counts the PREPAREs as done (``SESSIONS.forget`` if it fails)."""
        parts: list[str] = []
        if self._begin is not None and not self._begun:
            parts += self._begin
            self._begun = True
        if self._to_prepare:
            parts += SESSIONS.leading(self.conn, self._to_prepare)
            self._to_prepare = []
        parts += self._pending
        self._pending = []
        return parts + statements, len(parts)


class PgCursor(PgStatements):
    """Named queries over one connection, in as few round trips as a unit of work allows.

    Each round trip costs the client ~75 us of CPU in psycopg, far more than sending a
    few statements together (measured: five statements in one trip ~90 us, in five trips
    ~400 us). So statements that return nothing (``execute``, view writes, the events
    append) are bound client-side and queued; they travel with the next query that needs
    an answer, or with the COMMIT; and the transaction's BEGIN travels with its first
    statement. A claim is two round trips while one tenant has work (three with
    several), a completion batch two, a plain submit one, a submit that hands its job
    to a waiting worker one when the claim can be guessed and checked at commit
    (``guard``; ``Claiming.offer_to``) and two otherwise, and the events-table lock is
    taken and released within the last one, never held across a network wait. Named
    queries run as prepared statements (``prepared.py``): PostgreSQL parses and plans
    each once per connection, not once per transaction.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        begin: Sequence[str] | None = WRITE_BEGIN,
        prepared: bool = True,
    ):
        super().__init__(conn, psycopg.ClientCursor(conn), begin=begin, prepared=prepared)
        self.conn: psycopg.Connection[Any] = conn
        self.cur: psycopg.ClientCursor[Any] = self.cur

    def fetch(self, query: str, **params: Any) -> list[Any]:
        return self._send(self._bind(query, params))

    def fetch_many(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
        """Several queries in one round trip; their answers in order."""
        if not calls:
            return []
        statements = [self._bind(query, params) for query, params in calls]
        skip = self._send_all(statements) or 0  # never None: there are statements
        answers: list[list[Any]] = []
        for index in range(skip + len(statements)):
            if index >= skip:
                answers.append(self.cur.fetchall() if self.cur.description is not None else [])
            if index < skip + len(statements) - 1:
                self.cur.nextset()
        return answers

    def flush(self) -> None:
        self._send(None)

    def commit(self) -> None:
        if self._begin is not None and (self._begun or self._pending):
            self._send("COMMIT")
            self._begun = False
        elif self._pending:
            self._send(None)
        if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
            # Never leave committing to the pool's context exit: that would be a
            # round trip more, with the events-table lock held across it.
            raise RuntimeError("a unit of work ended with its transaction still open")

    def rollback(self) -> None:
        self._pending.clear()
        self._to_prepare.clear()
        if self.conn.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
            with suppress(psycopg.Error):  # a broken connection: the pool discards it
                self.conn.execute("ROLLBACK")
        self._begun = False

    def _send(self, last: str | None) -> list[Any]:
        if self._send_all([] if last is None else [last]) is None:
            return []
        while self.cur.nextset():  # every statement answers; the caller wants the last answer
            pass
        return self.cur.fetchall() if self.cur.description is not None else []

    def _send_all(self, statements: list[str]) -> int | None:
        """Send what is queued, then ``statements``, in one round trip; return how many
        statements went before ``statements`` (None: nothing to send)."""
        if self._begin is not None and not self._begun and self._prepared:
            self._prepare_outside()
        parts, skip = self._batch(statements)
        if not parts:
            return None
        try:
            # Newlines between statements: a "--" comment can never reach the next one.
            self.cur.execute(";\n".join(parts))
        except psycopg.Error as exc:
            if exc.sqlstate != GUARD_FAILED:
                # A guard fails after every PREPARE of its batch ran: the set is known.
                SESSIONS.forget(self.conn)
            raise
        except BaseException:
            SESSIONS.forget(self.conn)
            raise
        return skip

    def _prepare_outside(self) -> None:
        """Before the transaction's BEGIN: what must not be prepared inside it
        (``prepared.OUTSIDE_TRANSACTIONS``), in a round trip of its own, once per
        connection (and again after a failed batch)."""
        statements = SESSIONS.outside(self.conn)
        if not statements:
            return
        try:
            self.cur.execute(";\n".join(statements))
        except BaseException:
            SESSIONS.forget(self.conn)
            raise

    def _copy(self, query: str, rows: list[dict[str, Any]]) -> None:
        self.flush()  # COPY runs on its own: what was queued goes first
        table, columns = COPY_INSERTS[query]
        names = [name for name, _ in columns]
        arrays = [i for i, (_, kind) in enumerate(columns) if kind.endswith("[]")]
        with self.cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in columns])
            for row in rows:
                values = [row[name] for name in names]
                for i in arrays:
                    values[i] = list(values[i])  # psycopg dumps lists, not tuples, as arrays
                copy.write_row(values)

    def copy_events(self, statement: Composed, stored_events: Sequence[StoredEvent]) -> None:
        self.flush()
        with self.cur.copy(statement) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for e in stored_events:
                copy.write_row((e.originator_id, e.originator_version, e.topic, e.state))


class _ImmediateWriter:
    """View writes executed at once, for the library's own ``insert_events`` path."""

    def __init__(self, curs: psycopg.Cursor[Any]):
        self.curs = curs
        self.sql = queries("postgres")

    def write_many(self, query: str, rows: list[dict[str, Any]]) -> None:
        self.curs.execute(self.sql[query], {"rows": to_json(rows).decode()})


class FleetPostgresRecorder(PostgresApplicationRecorder):
    """The library's application recorder, plus Fleetlog's views in the append transaction.

    Through the library's own ``insert_events`` (``Application.save``), the views are
    written by the ``_insert_events`` hook, as in the library's searchable-content example.
    Fleetlog's units of work append through ``write``: the same steps in the same order
    (views, table lock, insert) queued into the single round trip that commits, without
    the library's ``NOTIFY`` of the events channel. That NOTIFY takes PostgreSQL's
    cluster-wide notification lock at every commit, held through the WAL flush, and only
    the library's ``subscribe()`` waits for it: Fleetlog follows the log by polling
    (``log_signal``), so its writes do not pay for it (a measured share of a hand-over
    submit's tail; README, Decisions). The library's recorder test suite runs against
    this class (tests/contract).
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self._copy_events = SQL(
            "COPY {0}.{1} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self._prelude: list[str] | None = None

    def _insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        views: ViewChanges | None = kwargs.get("views")
        if views is not None:
            apply_changes(_ImmediateWriter(curs), views)
            queues = newly_claimable_queues(views)
            if queues:
                curs.execute("SELECT pg_notify(%s, %s)", (QUEUE_CHANNEL, ",".join(sorted(queues))))

    def _append_prelude(self, conn: AnyConnection) -> list[str]:
        """The library's table-lock statements as text (composed once, not per write)."""
        if self._prelude is None:
            statements: list[Any] = list(self.lock_table_statements)
            self._prelude = [s.as_string(conn) if isinstance(s, Composable) else str(s) for s in statements]
        return self._prelude

    def write(self, cursor: PgStatements, stored_events: Sequence[StoredEvent], views: ViewChanges) -> None:
        """Queue a unit of work's appends on ``cursor``; they go with its COMMIT."""
        apply_changes(cursor, views)
        queues = newly_claimable_queues(views)
        if queues:
            # Delivered at commit, once per transaction, to workers LISTENing for work.
            cursor.add(cursor.cur.mogrify(f"NOTIFY {QUEUE_CHANNEL}, %s", (",".join(sorted(queues)),)))
        if not stored_events:
            return
        # The library's append steps: lock the table (commit order = notification order),
        # insert (no NOTIFY of the events channel: see the class's doc).
        for statement in self._append_prelude(cursor.conn):
            cursor.add(statement)
        if len(stored_events) >= COPY_MIN_ROWS:
            cursor.copy_events(self._copy_events, stored_events)
        else:
            rows = [
                {
                    "originator_id": e.originator_id,
                    "originator_version": e.originator_version,
                    "topic": e.topic,
                    "state": base64.b64encode(e.state).decode(),
                }
                for e in stored_events
            ]
            cursor.write_many("append_events", rows)


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
        # No pre-ping (a round trip per checkout): a dead pooled connection fails its
        # first statement, which surfaces as Unavailable and the unit of work is retried.
    }


def _translate(exc: BaseException) -> Exception | None:
    """The one choke point where driver errors become coordinator errors."""
    cause = exc.__cause__ if isinstance(exc, es.PersistenceError) else exc
    if isinstance(cause, psycopg.Error) and cause.sqlstate == GUARD_FAILED:
        return GuessMissed(str(cause).strip())
    if isinstance(cause, _RETRYABLE) or isinstance(exc, es.IntegrityError):
        return Conflict(str(exc).strip())
    if isinstance(exc, es.PersistenceError | psycopg.Error | psycopg_pool.PoolTimeout):
        return Unavailable(str(exc).strip() or type(exc).__name__)
    return None


def coordinator_errors() -> AbstractContextManager[None]:
    """Driver errors raised inside leave as the coordinator's (``_translate``)."""
    return translated(_translate)


class PostgresStore(SqlStore):
    backend = "postgres"

    def __init__(
        self, url: str, *, pool_size: int = 5, max_overflow: int = 10, prepared_statements: bool = True
    ):
        super().__init__(postgres_env(url, pool_size, max_overflow))
        self.url = url
        self.prepared_statements = prepared_statements
        self.datastore: PostgresDatastore = self.app.recorder.datastore  # type: ignore[attr-defined]
        self.recorder: FleetPostgresRecorder = self.app.recorder  # type: ignore[assignment]

    @contextmanager
    def _connection(self, begin: Sequence[str] | None) -> Iterator[PgCursor]:
        with coordinator_errors(), self.datastore.get_connection() as conn:
            cursor = PgCursor(conn, begin=begin, prepared=self.prepared_statements)
            try:
                yield cursor
                cursor.commit()
            except BaseException:
                cursor.rollback()
                raise

    def _transaction(self) -> AbstractContextManager[PgCursor]:
        return self._connection(WRITE_BEGIN)

    def _reader(self) -> AbstractContextManager[PgCursor]:
        return self._connection(None)

    def _snapshot(self) -> AbstractContextManager[PgCursor]:
        return self._connection(("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",))

    def _commit_writes(self, cursor: PgCursor, stored: list[StoredEvent], views: ViewChanges) -> None:
        self.recorder.write(cursor, stored, views)

    def ping(self) -> None:
        with self._reader() as cursor:
            cursor.cur.execute("SELECT 1")

    def loop_commits(self) -> PgLoopCommits:
        """A new pool of asynchronous connections for one event loop (closed by its owner)."""
        from adapters.store.loop_commits import PgLoopCommits

        return PgLoopCommits(
            self.url,
            self.recorder,
            self.app.mapper,
            self.specs,
            prepared=self.prepared_statements,
            idle_in_transaction_timeout=self.datastore.idle_in_transaction_session_timeout,
        )

    def work_signal(self, queues: Collection[str] | None = None) -> WorkSignal:
        return PgListener(self.url, QUEUE_CHANNEL, queues)

    def log_signal(self) -> WorkSignal:
        # Fleetlog's appends do not NOTIFY the events channel (FleetPostgresRecorder): poll.
        return PollBackoff(maximum=LOG_POLL_SECONDS)

    def leader_lock(self, name: str) -> PgAdvisoryLock:
        return PgAdvisoryLock(self.url, name)
