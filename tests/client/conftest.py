"""Fixtures for the client suite: a real server (``tests.http.live``) on each backend,
and ``FleetClient``s holding tokens it accepts."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from adapters.bootstrap import Settings
from adapters.client import FleetClient
from coordinator.identity import Role
from tests.http.live import LiveServer, serve

ClientFactory = Callable[..., FleetClient]

WORKER_ROLES = (Role.WORKER,)
"""A worker's token: the worker role alone is enough for everything a worker does."""


@pytest.fixture
def live_server(backend: Settings) -> Iterator[LiveServer]:
    """A real server on a random port, on each backend (SQLite, PostgreSQL)."""
    if backend.database_url:
        # Long polls, renewals and completions of a multi-threaded worker at once.
        backend = backend.model_copy(update={"pool_size": 12, "max_overflow": 8})
    with serve(backend) as server:
        yield server


@pytest.fixture
def make_client(live_server: LiveServer) -> Iterator[ClientFactory]:
    """``make_client(tenant, *roles, **client_options)``; every client is closed after."""
    made: list[FleetClient] = []

    def make(tenant: str | None = "acme", *roles: Role, **options: object) -> FleetClient:
        client = FleetClient(live_server.url, live_server.token(tenant, *roles), **options)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> FleetClient:
    """Every role, in tenant acme."""
    return make_client("acme")
