"""Keeping ``fleetlog analytics sql`` read-only.

Two locks, because neither is enough alone on chDB:

1. The statement is parsed by ClickHouse itself (``formatQuerySingleLine``, which
   refuses a second statement and drops comments), and its first keyword must be a
   reading one; ``INTO OUTFILE`` is refused too (the embedded engine would write the
   file).
2. It runs with ``readonly = 2`` (reads, and setting changes for the query itself):
   ClickHouse refuses writes and DDL, and a ``SETTINGS readonly = 0`` inside the query.

Why both: chDB executes every statement of a multi-statement text (``SELECT 1; DROP
TABLE t`` drops t, and leaves the client's result stream garbled), and
clickhouse-connect's chdb backend applies an INSERT's settings with SET and restores
them afterwards, which readonly itself forbids, leaving that client's connection
read-only for good. So writes must never reach the driver. This is an operator's tool: it sees every tenant,
and on chDB table functions such as ``file()`` can still read local files.
"""

from __future__ import annotations

import re

from clickhouse_connect.driver.client import Client

from coordinator.errors import InvalidRequest

READING = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
_FIRST_WORD = re.compile(r"^[\s(]*([A-Za-z]+)")
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)
READONLY = {"readonly": 2}


def check_read_only(client: Client, sql: str) -> None:
    """Raise ``InvalidRequest`` unless ``sql`` is one reading statement. ClickHouse's own
    refusals (a syntax error, two statements) propagate for the caller's choke point."""
    rows = client.query("SELECT formatQuerySingleLine({sql:String})", parameters={"sql": sql}).result_rows
    normalized = str(rows[0][0])
    match = _FIRST_WORD.match(normalized)
    word = match[1].upper() if match else ""
    if word not in READING:
        _refuse(f"{word or 'this statement'} is not a reading statement")
    if _OUTFILE.search(normalized):
        _refuse("INTO OUTFILE writes a file")


def readonly_settings(client: Client) -> dict[str, int]:
    """``readonly = 2`` for the query, unless the server already has this user read-only
    (then raising it back to 2 is itself refused, and writes are refused anyway)."""
    current = client.server_settings.get("readonly")
    if current is not None and current.value != "0":
        return {}
    return dict(READONLY)


def _refuse(why: str) -> None:
    raise InvalidRequest(
        "SQL",
        [
            {
                "loc": "sql",
                "msg": f"{why}; analytics SQL is read-only: one statement starting with "
                + ", ".join(READING),
                "type": "read-only",
            }
        ],
    )
