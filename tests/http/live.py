"""A real Fleetlog HTTP server on a random port, in this process (uvicorn on a thread),
and helpers to mint tokens and talk to it with httpx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from adapters.analytics.runtime import AnalyticsRuntime
from adapters.auth import TokenAuthority
from adapters.bootstrap import Settings, analytics_settings, build_app
from adapters.http.app import ApiConfig, create_app
from adapters.http.server import listening_socket, uvicorn_config
from coordinator.analytics import ConsumerConfig
from coordinator.fleet import Fleet
from coordinator.identity import Role
from coordinator.reaper import ReaperConfig

SECRET = b"fleetlog-tests-" + b"x" * 64
ALL = tuple(Role)


@dataclass
class LiveServer:
    url: str
    fleet: Fleet
    authority: TokenAuthority
    settings: Settings

    def token(self, tenant: str | None, *roles: Role, subject: str = "tester", ttl: float = 3600) -> str:
        return self.authority.issue(subject, tenant, roles or ALL, ttl_seconds=ttl, now=datetime.now(UTC))

    def client(self, token: str | None, **kwargs: Any) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 40), **kwargs)

    @contextmanager
    def as_tenant(self, tenant: str | None, *roles: Role, **kwargs: Any) -> Iterator[httpx.Client]:
        with self.client(self.token(tenant, *roles), **kwargs) as http:
            yield http


@contextmanager
def serve(
    settings: Settings, config: ApiConfig | None = None, *, analytics: ConsumerConfig | None = None
) -> Iterator[LiveServer]:
    """Start the app (with its reaper on a short interval) and stop it gracefully.
    ``analytics``: also follow the log into ClickHouse (the settings' database)."""
    settings = settings.model_copy(update={"reaper": ReaperConfig(interval_seconds=0.2)})
    fleet = build_app(settings)
    authority = TokenAuthority(SECRET)
    runtime = None if analytics is None else AnalyticsRuntime(fleet, analytics_settings(settings), analytics)
    app = create_app(fleet, authority, config or ApiConfig(poll_seconds=0.25), runtime)
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", fleet, authority, settings)
    finally:
        app.state.broadcaster.begin_shutdown()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        fleet.close()
