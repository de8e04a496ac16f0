"""One fresh store per test on each backend, for ``fleetlog mcp`` sessions."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.auth import load_secret
from adapters.bootstrap import Settings
from tests.mcp.harness import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Embedded: the secret is the data dir's generated ``jwt.secret``, as the server
    finds it. PostgreSQL: ``FLEETLOG_JWT_SECRET``, which that mode requires. After the
    test, every view must equal its rebuild from the log the server wrote."""
    errlog = tmp_path / "server.stderr"
    if request.param == "sqlite":
        data = tmp_path / "data"
        secret = load_secret({}, data, embedded=True)
        store = Store(Settings(data_dir=data), {"FLEETLOG_DATA_DIR": str(data)}, secret, errlog)
    else:
        url = request.getfixturevalue("pg_database")
        text = secrets.token_urlsafe(48)
        settings = Settings(database_url=url, pool_size=1, max_overflow=2)
        store = Store(settings, {"DATABASE_URL": url, "FLEETLOG_JWT_SECRET": text}, text.encode(), errlog)
    yield store
    store.verify_projections()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    """Embedded only: for cases that do not depend on the backend."""
    data = tmp_path / "data"
    secret = load_secret({}, data, embedded=True)
    return Store(
        Settings(data_dir=data), {"FLEETLOG_DATA_DIR": str(data)}, secret, tmp_path / "server.stderr"
    )
