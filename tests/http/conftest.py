from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.bootstrap import Settings
from tests.http.live import LiveServer, serve


@pytest.fixture
def live_server(backend: Settings) -> Iterator[LiveServer]:
    """A real server on a random port, on each backend (SQLite, PostgreSQL)."""
    with serve(backend) as server:
        yield server
