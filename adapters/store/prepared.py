"""Named queries as server-side prepared statements, within the one-round-trip batches.

``PgCursor`` sends its statements as client-bound text (the simple query protocol is what
lets several statements share one round trip), so without preparing, PostgreSQL parses
and plans every statement of every unit of work again: about half of a short claim
query's server time (measured: 0.30 ms planned each time, 0.15 ms prepared, 0.12 ms for
``SELECT 1``). So a named query runs as ``EXECUTE fl_<name>(<values>)``, and the first
use on a connection puts its ``PREPARE`` in front, in the same round trip.

PREPARE lasts for the session and is not transactional: a rolled-back transaction keeps
what it prepared, and a round trip that failed part-way may or may not have prepared its
statements. After any failure the connection's set is therefore unknown, and its next
batch starts by deallocating Fleetlog's statements (a ``DO`` block, in the same round
trip) before preparing again; that also drops a plan a migration made stale.
``DEALLOCATE ALL`` would be wrong: it would drop psycopg's own prepared statements too.
For the same reason psycopg's automatic preparing is off on these connections
(``PgCursor``): psycopg answers a ROLLBACK or a DROP by sending ``DEALLOCATE ALL``, which
would drop ours. A connection the pool replaces is a new object with an empty set.

Plans follow PostgreSQL's plan cache (custom plans first, a generic plan once it costs no
more); write transactions plan with sequential scans and sorts disabled (``WRITE_BEGIN``),
so a generic plan keeps to the indexes too.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any
from weakref import WeakKeyDictionary

import psycopg

from adapters.sql import queries

PREFIX = "fl_"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_PREPARABLE = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "MERGE"})
"""What PREPARE accepts; other statements (LOCK, TRUNCATE) run as plain text."""


def _first_keyword(sql: str) -> str:
    for line in sql.splitlines():
        code = line.split("--", 1)[0].strip()
        if code:
            return code.split()[0].upper()
    return ""


@dataclass(frozen=True, slots=True)
class PreparedQuery:
    statement: str
    """The server-side name: ``fl_<query>``."""
    params: tuple[str, ...]
    """The query's parameter names, in ``$1, $2, …`` order."""
    prepare: str
    """``PREPARE fl_<query> AS <the query with $n placeholders>``."""
    execute: str
    """``EXECUTE fl_<query>(%s, …)``, to bind client-side with the values in ``params`` order."""


@cache
def prepared_query(name: str) -> PreparedQuery | None:
    """The named query as a prepared statement; None if PREPARE cannot take it."""
    sql = queries("postgres")[name]
    if _first_keyword(sql) not in _PREPARABLE:
        return None
    if "%%" in sql:
        raise ValueError(f"query {name!r}: a literal % cannot be prepared; use a parameter")
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${order.setdefault(match.group(1), len(order) + 1)}"

    body = _PLACEHOLDER.sub(number, sql)
    statement = PREFIX + name
    args = ", ".join(["%s"] * len(order))
    return PreparedQuery(
        statement=statement,
        params=tuple(order),
        # A newline before the body: its first line may be a "--" comment.
        prepare=f"PREPARE {statement} AS\n{body}",
        execute=f"EXECUTE {statement}({args})" if order else f"EXECUTE {statement}",
    )


DEALLOCATE_OURS = (
    "DO $$ DECLARE r record; BEGIN "
    f"FOR r IN SELECT name FROM pg_prepared_statements WHERE starts_with(name, '{PREFIX}') "
    "LOOP EXECUTE format('DEALLOCATE %I', r.name); END LOOP; END $$"
)


OUTSIDE_TRANSACTIONS = ("append_events",)
"""Named queries prepared before a write transaction begins, never inside one. PREPARE
takes the locks of the statement it parses, held to the end of the transaction: ROW
EXCLUSIVE on the events table for its INSERT. A write transaction takes that table's
EXCLUSIVE lock last (``FleetPostgresRecorder.write``); holding ROW EXCLUSIVE from an
earlier PREPARE, two transactions deadlocked (each waiting for the other's table lock, or
for a row lock the other held: found after ``deadlock_timeout``, one second, and retried)."""


AnyConnection = psycopg.Connection[Any] | psycopg.AsyncConnection[Any]


class Sessions:
    """Which named queries each connection has prepared (None: unknown, start over)."""

    def __init__(self) -> None:
        self._known: WeakKeyDictionary[AnyConnection, set[str] | None] = WeakKeyDictionary()
        self._lock = threading.Lock()

    def leading(self, conn: AnyConnection, names: list[str]) -> list[str]:
        """The statements to send before a batch that executes ``names`` on ``conn``;
        they count as done from now on (``forget`` if the batch fails)."""
        out = []
        with self._lock:
            known = self._known.get(conn, set())
            if known is None:
                out.append(DEALLOCATE_OURS)
                known = set()
            for name in names:
                statement = prepared_query(name)
                if statement is not None and statement.statement not in known:
                    known.add(statement.statement)
                    out.append(statement.prepare)
            self._known[conn] = known
        return out

    def outside(self, conn: AnyConnection) -> list[str]:
        """The statements to run on ``conn`` outside any transaction before its next
        write transaction begins (``OUTSIDE_TRANSACTIONS`` it has not prepared yet); they
        count as done from now on (``forget`` if they fail)."""
        return self.leading(conn, list(OUTSIDE_TRANSACTIONS))

    def forget(self, conn: AnyConnection) -> None:
        """A batch failed: what the session holds is no longer known."""
        with self._lock:
            self._known[conn] = None


SESSIONS = Sessions()
