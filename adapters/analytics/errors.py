"""The ClickHouse adapter's one choke point for driver errors.

- the server or engine cannot answer now (connection, timeout, memory, too many parts,
  keeper...) -> ``Unavailable`` (retryable: the consumer backs off and retries its batch);
- SQL a user typed that ClickHouse refuses -> ``InvalidRequest`` (nothing to retry);
- anything else ClickHouse refuses (our own statements: a schema that drifted, a bug)
  -> ``AnalyticsRefused``, not retryable, carrying ClickHouse's code and message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from coordinator.errors import CoordinatorError, InvalidRequest, Unavailable

# ClickHouse error codes that mean "not now" rather than "never".
RETRYABLE_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY (a replica lost its keeper session)
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        473,  # DEADLOCK_AVOIDED
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION
    }
)
_CODE = re.compile(r"Code: (\d+)")


class AnalyticsRefused(CoordinatorError):
    """ClickHouse refused one of Fleetlog's own statements; retrying will not help."""

    code = "analytics-refused"

    def __init__(self, what: str, clickhouse_code: int | None, detail: str):
        super().__init__(f"ClickHouse refused {what}: {detail}", what=what, clickhouse_code=clickhouse_code)


def unavailable(detail: str) -> Unavailable:
    """``Unavailable`` worded for the analytics store (its own wording is the event store's)."""
    error = Unavailable(detail)
    error.message = f"analytics store (ClickHouse) unavailable: {detail}"
    error.args = (error.message,)
    return error


def clickhouse_code(exc: ClickHouseError) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match[1]) if match else None


def summary(exc: BaseException) -> str:
    """ClickHouse's message on one line, without its version trailer and query echo."""
    text = " ".join(str(exc).split())
    text = re.sub(r"\s*\(version [^)]*\)\.?", "", text)
    # The analyzer appends "In scope <the whole query>": our wrapping of it, not the user's.
    text = re.sub(r"[\s.:]*In scope .*?(?=\.? \([A-Z_]+\)$)", "", text)
    return text[:500] or type(exc).__name__


@contextmanager
def driver_errors(where: str, what: str, *, user_sql: bool = False) -> Iterator[None]:
    """Translate what clickhouse_connect raises inside the block. ``where`` names the
    store (``AnalyticsSettings.describe()``), ``what`` the operation."""
    try:
        yield
    except ClickHouseError as exc:
        code = clickhouse_code(exc)
        if isinstance(exc, OperationalError) or code in RETRYABLE_CODES:
            raise unavailable(f"{where}, {what}: {summary(exc)}") from exc
        if user_sql:
            loc = {"loc": "sql", "msg": summary(exc), "type": f"clickhouse-{code or 'error'}"}
            raise InvalidRequest("SQL", [loc]) from exc
        raise AnalyticsRefused(what, code, summary(exc)) from exc
