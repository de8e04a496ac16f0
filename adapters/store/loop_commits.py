"""Units of work committed from an event loop, on PostgreSQL (``Store.loop_commits``).

A unit of work that needs no answer before its commit (a submit whose job is handed
to a waiting worker on a guessed claim, ``Claiming.offer_to``) is one round trip: every
statement is bound and queued, then sent with the COMMIT. Run from an event loop
through a thread (``Api.run``), that one round trip costs two hops between threads,
each waiting for the GIL behind the loop and the other threads (measured on W3: 0.14
and 0.16 ms at the median, about 1 ms each over the slowest 1 % of jobs). Here the loop
runs the unit of work itself, with a ``LoopCursor`` that binds and queues as
``PgCursor`` does but refuses to read (``WouldRead``: nothing has been sent), and sends
the batch on an asynchronous connection of its own pool: the loop serves other
requests while PostgreSQL works.

The statements, their order and their prepared names are exactly ``PgCursor``'s (the
same ``PgStatements`` binds them, the same ``SESSIONS`` tracks what each connection has
prepared); only the sending differs. Nothing is retried here: a failure raises the
coordinator's errors as ``PostgresStore``'s units of work do (``GuessMissed``,
``Conflict``, ``Unavailable``), with nothing written, and the caller runs the unit of
work again the ordinary way, which retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import psycopg_pool
from eventsourcing.persistence import Mapper, StoredEvent
from psycopg import pq
from psycopg.rows import dict_row
from psycopg.sql import Composed

from adapters.store.postgres import (
    GUARD_FAILED,
    WRITE_BEGIN,
    FleetPostgresRecorder,
    PgStatements,
    coordinator_errors,
)
from adapters.store.prepared import SESSIONS
from adapters.store.spec_cache import SpecCache
from adapters.store.unit_of_work import SqlUnitOfWork
from adapters.store.view_writer import PLAN
from coordinator.errors import WouldRead
from coordinator.ports import UnitOfWork

T = TypeVar("T")

LOOP_APPLICATION_NAME = "fleetlog-loop"
"""How the loop's connections show in ``pg_stat_activity``."""
LOOP_POOL_SIZE = 4
"""Connections of the loop's pool: commits in flight at once (each is one round trip;
at 200 hand-overs/s one or two are). All are opened with the server and kept: a
connection opened while commits wait for one serves its first ones cold."""
LOOP_POOL_MIN = LOOP_POOL_SIZE
"""Connections the loop's pool keeps open (ready from the server's start)."""
LOOP_QUERIES: tuple[str, ...] = (*(query for query, _, _ in PLAN), "guard_hand_over")
"""The named queries a unit of work committed from the loop can send (it only writes:
views, the hand-over's guard; the events' insert is ``OUTSIDE_TRANSACTIONS``). Each
connection prepares them as it connects, so no hand-over carries a PREPARE."""
LOOP_POOL_WAIT_SECONDS = 1.0
"""Longest a commit waits for a connection of the loop's pool (or the pool's first one)
before the unit of work goes the ordinary way on a thread instead."""


class LoopCursor(PgStatements):
    """``PgCursor``'s binding and queueing on an asynchronous connection; no reads."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], *, prepared: bool):
        super().__init__(conn, psycopg.AsyncClientCursor(conn), begin=WRITE_BEGIN, prepared=prepared)
        self.conn: psycopg.AsyncConnection[Any] = conn
        self.cur: psycopg.AsyncClientCursor[Any] = self.cur

    def fetch(self, query: str, **params: Any) -> list[Any]:
        raise WouldRead(query)

    def fetch_many(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
        raise WouldRead(", ".join(query for query, _ in calls))

    def flush(self) -> None:
        raise WouldRead("a statement sent on its own")

    def _copy(self, query: str, rows: list[dict[str, Any]]) -> None:
        raise WouldRead(f"{query} through COPY")

    def copy_events(self, statement: Composed, stored_events: Sequence[StoredEvent]) -> None:
        raise WouldRead("events through COPY")

    async def commit(self) -> None:
        """Send what is queued with the COMMIT, in one round trip."""
        if not self._pending and not self._begun:
            return  # nothing to write
        if self._prepared:
            await prepare_outside(self.conn)  # done as it connected, unless a batch failed since
        parts, _ = self._batch(["COMMIT"])
        try:
            # Newlines between statements: a "--" comment can never reach the next one.
            await self.cur.execute(";\n".join(parts))
        except psycopg.Error as exc:
            if exc.sqlstate != GUARD_FAILED:
                SESSIONS.forget(self.conn)  # a guard fails after every PREPARE ran
            await self._rollback()
            raise
        except BaseException:
            SESSIONS.forget(self.conn)
            raise
        if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:
            raise RuntimeError("a unit of work ended with its transaction still open")

    async def _rollback(self) -> None:
        if self.conn.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
            with suppress(psycopg.Error):  # a broken connection: the pool discards it
                await self.conn.execute("ROLLBACK")


async def prepare_outside(conn: psycopg.AsyncConnection[Any], *, also: Sequence[str] = ()) -> None:
    """What ``conn`` must prepare outside any transaction and has not (``PgCursor``'s
    ``_prepare_outside``), with the named queries ``also`` if not yet prepared, in a
    round trip of its own."""
    outside = SESSIONS.outside(conn) + SESSIONS.leading(conn, list(also))
    if not outside:
        return
    try:
        await conn.execute(";\n".join(outside))
    except BaseException:
        SESSIONS.forget(conn)
        raise


class PgLoopCommits:
    """``coordinator.ports.LoopCommits`` on PostgreSQL: a pool of asynchronous
    connections on one event loop, opened by ``open`` (the server's start) or else by
    the first commit."""

    def __init__(
        self,
        url: str,
        recorder: FleetPostgresRecorder,
        mapper: Mapper[UUID],
        specs: SpecCache,
        *,
        prepared: bool,
        idle_in_transaction_timeout: float,
        size: int = LOOP_POOL_SIZE,
        wait_seconds: float = LOOP_POOL_WAIT_SECONDS,
    ):
        self._url = url
        self._recorder = recorder
        self._mapper = mapper
        self._specs = specs
        self._prepared = prepared
        self._idle_ms = int(idle_in_transaction_timeout * 1000)
        self._size = size
        self._wait_seconds = wait_seconds
        self._pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._opening: asyncio.Lock | None = None

    async def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        with coordinator_errors():  # WouldRead passes as it is
            pool = await self._opened()
            async with pool.connection() as conn:
                cursor = LoopCursor(conn, prepared=self._prepared)
                uow = SqlUnitOfWork(cursor, self._specs)
                result = work(uow)
                stored, views = uow.prepare(self._mapper)
                if stored or not views.is_empty():
                    self._recorder.write(cursor, stored, views)
                await cursor.commit()
                return result

    async def _opened(self) -> psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        """The pool, opened on this loop by its first user with its first connection
        ready; a pool that could not get one is closed, and the next user tries anew."""
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                pool = self._new_pool()
                # Closed by the pool itself if no connection comes within the wait.
                await pool.open(wait=True, timeout=self._wait_seconds)
                self._pool = pool
        return self._pool

    async def open(self) -> None:
        """Open the pool now (the server's start), rather than in its first commit."""
        with coordinator_errors():
            await self._opened()

    def _new_pool(self) -> psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        setting = f"SET idle_in_transaction_session_timeout = '{self._idle_ms}ms'"
        prepared = self._prepared

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            # As the library's pool configures its connections; and what a write must
            # prepare outside its transaction, prepared before the connection's first
            # use rather than in a round trip of its own in front of it, with what the
            # loop's commits execute (parsed now, not in front of a hand-over).
            await conn.set_autocommit(True)
            await conn.execute(setting)
            if prepared:
                await prepare_outside(conn, also=LOOP_QUERIES)

        return psycopg_pool.AsyncConnectionPool(
            self._url,
            min_size=LOOP_POOL_MIN,
            max_size=self._size,
            kwargs={"row_factory": dict_row, "application_name": LOOP_APPLICATION_NAME},
            configure=configure,
            timeout=self._wait_seconds,
            open=False,
            name="fleetlog-loop",
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
