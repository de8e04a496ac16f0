"""Fixtures shared by every suite.

PostgreSQL tests need the server on 127.0.0.1:5432: each test gets a fresh database
cloned from a migrated template. Without the server they skip with a message, except
under CI=true, where a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from adapters.bootstrap import Settings
from adapters.store.migrate import migrate_postgres
from coordinator.fleet import Fleet
from tests.support import FakeClock, build_fleet, fresh_pg_database, pg_admin, pg_url

settings.register_profile(
    "fleetlog", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("fleetlog")

IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> str | None:
    try:
        with pg_admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The embedded ClickHouse of this test process: chDB runs one engine directory per
    process, so everything in-process shares it (each test picks its own database)."""
    return f"chdb://{tmp_path_factory.mktemp('chdb').resolve()}"


@pytest.fixture(autouse=True)
def _analytics_in_this_process(monkeypatch: pytest.MonkeyPatch, chdb_url: str) -> None:
    # In-process code (the CLI's `migrate`, servers with analytics) would otherwise open
    # <data dir>/clickhouse, a second engine directory. Child processes get their own
    # (tests/client/processes.py and the CLI runner drop an inherited chdb:// URL).
    if not os.environ.get("CLICKHOUSE_URL"):
        monkeypatch.setenv("CLICKHOUSE_URL", chdb_url)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database with every migration applied, cloned by each PostgreSQL test."""
    problem = _pg_available()
    if problem is not None:
        message = (
            f"PostgreSQL is not reachable at 127.0.0.1:5432 ({problem}); start it "
            "(pg_ctlcluster 15 main start) to run these tests"
        )
        if IN_CI:
            pytest.fail("CI=true and " + message, pytrace=False)
        pytest.skip(message)
    name = f"fleetlog_tpl_{uuid.uuid4().hex[:10]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate_postgres(pg_url(name))
        yield name
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(pg_template: str) -> Iterator[str]:
    with fresh_pg_database(pg_template) as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh store on each backend: every behaviour test runs on both."""
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path / "data")
        return
    template = request.getfixturevalue("pg_template")
    with fresh_pg_database(template) as url:
        yield Settings(database_url=url, pool_size=2, max_overflow=6)


@pytest.fixture
def fleet(backend: Settings, clock: FakeClock) -> Iterator[Fleet]:
    app = build_fleet(backend, clock)
    try:
        yield app
    finally:
        app.close()
