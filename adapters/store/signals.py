"""How a waiting claimer learns that work may have arrived.

PostgreSQL: a transaction that makes jobs claimable sends ``NOTIFY fleetlog_queue`` with
the queue names as payload (the store's view writer does it, once per transaction), so a
``LISTEN`` on a dedicated connection wakes a worker within milliseconds of a submit, and
only for work on its queues (heartbeats, renewals and checkpoints wake nobody). SQLite
has no notifications: poll, backing off while idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("fleetlog.store.signals")

QUEUE_CHANNEL = "fleetlog_queue"

LOG_POLL_SECONDS = 0.25
"""Following the event log (``log_signal``), an idle poll backs off to this: appends
notify nobody (``FleetPostgresRecorder``; SQLite cannot), so a new event is seen within it."""

SLICE_SECONDS = 0.1
"""A listener re-checks for ``interrupt()`` this often (a stop never waits longer)."""


class PollBackoff:
    """Sleep a little longer each idle poll (25 ms doubling to 500 ms); reset on work."""

    def __init__(self, initial: float = 0.025, maximum: float = 0.5, factor: float = 2.0):
        if not 0 < initial <= maximum or factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._delay = initial
        self._lock = threading.Lock()
        self._interrupted = threading.Event()

    @property
    def delay(self) -> float:
        return self._delay

    def arm(self) -> None:
        pass

    def wait(self, timeout: float) -> None:
        with self._lock:
            delay = min(self._delay, max(0.0, timeout))
            self._delay = min(self._delay * self.factor, self.maximum)
        self._interrupted.wait(delay)
        self._interrupted.clear()

    def work_found(self) -> None:
        with self._lock:
            self._delay = self.initial

    def interrupt(self) -> None:
        self._interrupted.set()

    def close(self) -> None:
        pass


class PgListener:
    """``LISTEN <channel>`` on a connection of its own (never a pooled one: a pooled
    connection would hand the notifications to whoever borrows it next).

    Nothing is missed between a claim and the next wait: the connection listens before
    the first claim (``arm``), and psycopg queues notifications that arrive while
    nobody iterates ``notifies()``; the caller claims after every wake-up.
    """

    def __init__(self, conninfo: str, channel: str = QUEUE_CHANNEL, queues: Collection[str] | None = None):
        self._conninfo = conninfo
        self._channel = channel
        self._queues = None if queues is None else frozenset(queues)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._interrupted = threading.Event()

    def arm(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                return
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                log.warning("cannot LISTEN for work (will poll instead): %s", exc)
                return
            try:
                conn.execute(sql.SQL("LISTEN {0}").format(sql.Identifier(self._channel)))
            except psycopg.Error as exc:
                conn.close()
                log.warning("LISTEN %s failed (will poll instead): %s", self._channel, exc)
                return
            self._conn = conn

    def wait(self, timeout: float) -> None:
        self.arm()
        deadline = time.monotonic() + timeout
        try:
            while not self._interrupted.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._wait_slice(min(remaining, SLICE_SECONDS)):
                    return
        finally:
            self._interrupted.clear()

    def _wait_slice(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a notification; True if one came."""
        conn = self._conn
        if conn is None:
            self._interrupted.wait(seconds)  # no listener: the caller's timeout is the poll interval
            return False
        try:
            got = [n.payload for n in conn.notifies(timeout=seconds, stop_after=1)]
            if got:
                # Drain what else has already arrived: a burst of commits is one wake-up.
                got += [n.payload for n in conn.notifies(timeout=0)]
        except psycopg.Error as exc:
            log.warning("listening connection lost, reconnecting: %s", exc)
            self._drop()
            return True  # claim now: something may have been missed while reconnecting
        return any(self._concerns(payload) for payload in got)

    def _concerns(self, payload: str) -> bool:
        """The payload lists the queues that gained claimable work (empty: unknown)."""
        if self._queues is None or not payload:
            return True
        return not self._queues.isdisjoint(payload.split(","))

    def work_found(self) -> None:
        pass

    def interrupt(self) -> None:
        self._interrupted.set()

    def _drop(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._drop()
