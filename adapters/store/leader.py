"""Leader locks: at most one process runs a given consumer at a time.

PostgreSQL: a session advisory lock on a connection of its own. The lock lives exactly
as long as that session, so ``held()`` asks the server (a dropped connection, a killed
backend or a failover all read as leadership lost, and the consumer stops writing).
SQLite (embedded): an exclusive ``flock`` on a file beside the database; the kernel
releases it when the process dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from contextlib import suppress
from pathlib import Path

import psycopg

log = logging.getLogger("fleetlog.store.leader")


class PgAdvisoryLock:
    def __init__(self, url: str, name: str):
        self.url = url
        self.name = f"fleetlog:{name}"
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                return self._check()
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.name,)
                ).fetchone()
            except psycopg.Error as exc:
                log.warning("cannot reach PostgreSQL to take the %s lock: %s", self.name, exc)
                return False
            if row and row[0]:
                self._conn = conn
                return True
            conn.close()
            return False

    def _check(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            # A session advisory lock lasts exactly as long as its session: if the session
            # still answers, the lock is still ours.
            row = conn.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            log.warning("lost the %s lock (its connection failed: %s)", self.name, exc)
            self._drop()
            return False
        if not row or not row[0]:
            self._drop()
            return False
        return True

    def held(self) -> bool:
        with self._lock:
            return self._check()

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def release(self) -> None:
        with self._lock:
            self._drop()  # closing the session releases its advisory locks


class FileLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._fd is not None:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # closing the descriptor drops the flock
                self._fd = None
