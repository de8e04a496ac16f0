"""CLI fixtures: one store per test on each backend, driven through ``fleetlog``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.cli_runner import Cli


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_args(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The options that select a fresh store: a temp --data-dir, or a new, migrated
    PostgreSQL database."""
    if request.param == "sqlite":
        return ["--data-dir", str(tmp_path / "data")]
    return ["--database-url", request.getfixturevalue("pg_database")]


@pytest.fixture
def cli(store_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The real console script, in a child process."""
    return Cli(store_args, tmp_path, in_process=False, monkeypatch=monkeypatch)


@pytest.fixture
def cli_main(store_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``main(argv)`` in this process: for the many small cases."""
    return Cli(store_args, tmp_path, in_process=True, monkeypatch=monkeypatch)


@pytest.fixture
def sqlite_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """In-process, embedded store only: for cases that do not depend on the backend."""
    return Cli(["--data-dir", str(tmp_path / "data")], tmp_path, in_process=True, monkeypatch=monkeypatch)
