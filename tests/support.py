"""Test helpers: a fake clock, a seeded random source, factories for specs and fleets.

Only the clock and the random source are ever faked; stores are real SQLite files and
real PostgreSQL databases.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from adapters.bootstrap import Settings, build_app
from adapters.system import SystemRandom, Uuid7Ids
from coordinator.fleet import Fleet
from coordinator.identity import Identity

PG_ADMIN_URL = os.environ.get("FLEETLOG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock tests move by hand (thread-safe, never goes backwards)."""

    def __init__(self, start: datetime = START):
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the fake clock only moves forward")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def make_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"payload": {"n": 1}}
    spec.update(overrides)
    return spec


def tenant(name: str = "acme", subject: str = "tester") -> Identity:
    return Identity.of(subject, name)


def fleet_wide(subject: str = "operator") -> Identity:
    return Identity.of(subject, None)


def pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


@contextmanager
def fresh_pg_database(template: str) -> Iterator[str]:
    """A new database cloned from the migrated template; dropped afterwards."""
    name = f"fleetlog_t_{uuid.uuid4().hex[:12]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield pg_url(name)
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_fleet(settings: Settings, clock: FakeClock, seed: int = 7) -> Fleet:
    return build_app(settings, clock=clock, ids=Uuid7Ids(), random=SystemRandom(seed))


def sqlite_settings(path: Path) -> Settings:
    return Settings(data_dir=path)
