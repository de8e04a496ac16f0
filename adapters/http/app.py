"""``create_app``: the Starlette application over one ``Fleet``.

The app is stateless apart from the long-poll broadcaster: any number of server
processes can serve one PostgreSQL database. With ``background=True`` the lifespan
also runs the coordinator's background services (reaper, scheduler) on threads; they
are safe to run in every process at once (they lock what they change with SKIP LOCKED).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from adapters.analytics.runtime import AnalyticsRuntime
from adapters.auth import TokenAuthority
from adapters.http import problems
from adapters.http.analytics_api import AnalyticsApi
from adapters.http.api import Api
from adapters.http.claims import DEFAULT_HANDOFF_WAIT, MAX_HANDOFF_WAIT, REFILL_IDLE_SECONDS
from adapters.http.docs import PAGE
from adapters.http.openapi import document
from adapters.http.room_relay import RoomRelay
from adapters.http.routing import Dispatcher
from adapters.http.schemas import MAX_WAIT_SECONDS
from adapters.http.waiting import WorkBroadcaster
from coordinator.fleet import Fleet

log = logging.getLogger("fleetlog.http")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class ApiConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = DEFAULT_MAX_BODY_BYTES
    threads: Annotated[int, Field(ge=1, le=1000)] = 64
    """Store calls in flight at once (each runs on a thread and holds a connection)."""
    poll_seconds: Annotated[float, Field(gt=0, le=30)] = 0.5
    """A long-polling claim re-checks at least this often (due ``run_at``/retry times
    notify nobody; on SQLite another process's submits notify nobody either)."""
    background: bool = True
    """Run the reaper and scheduler in this process."""
    handoff: bool = True
    """Offer a new job to a long-poll claim waiting here, in the submit's transaction
    (see ``adapters.http.waiting``); off: every job goes through the queue."""
    handoff_wait_seconds: Annotated[float, Field(ge=0, le=MAX_HANDOFF_WAIT)] = DEFAULT_HANDOFF_WAIT
    """How long a submit may wait for a waiting claim busy in a claim of its own."""
    loop_commits: bool = True
    """Where the store has them (PostgreSQL), a hand-over submit that needs no read
    before its commit runs on the event loop and sends its one round trip from there
    (``Store.loop_commits``); off: every unit of work runs on a thread."""
    refill_idle_seconds: Annotated[float, Field(gt=0, le=MAX_WAIT_SECONDS)] = REFILL_IDLE_SECONDS
    """How long a refilled claim stream with no room waits for its worker to give it some
    before it ends."""


class BackgroundServices:
    def __init__(self, fleet: Fleet, analytics: AnalyticsRuntime | None = None):
        self.fleet = fleet
        self.analytics = analytics
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        services: list[tuple[str, Any]] = [
            ("reaper", self.fleet.reaper.run),
            ("scheduler", self.fleet.scheduler.run),
        ]
        if self.analytics is not None:
            # Every server runs one; only the projection's leader writes (leader lock).
            services.append(("analytics", self.analytics.run))
        for name, run in services:
            thread = threading.Thread(target=self._guard(name, run), name=f"fleetlog-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _guard(self, name: str, run: Any) -> Any:
        def body() -> None:
            try:
                run(self._stop)
            except Exception:  # a thread boundary: log loudly rather than die silently
                log.exception("background service %s crashed", name)

        return body

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def app_version() -> str:
    try:
        return version("fleetlog")
    except PackageNotFoundError:
        return "0.0.0"


def openapi_document(config: ApiConfig | None = None) -> dict[str, Any]:
    """The OpenAPI document without a store (for tools and tests): the declarations only
    name the handlers, so an unopened ``Api`` describes the same routes."""
    config = config or ApiConfig()
    declared = Api.__new__(Api).endpoints() + AnalyticsApi.__new__(AnalyticsApi).endpoints()
    return document(declared, version=app_version(), max_body_bytes=config.max_body_bytes)


def create_app(
    fleet: Fleet,
    authority: TokenAuthority,
    config: ApiConfig | None = None,
    analytics: AnalyticsRuntime | None = None,
) -> Starlette:
    """``analytics``: the ClickHouse side (None: the analytics routes answer 503)."""
    config = config or ApiConfig()
    store = fleet.ctx.store
    postgres_url = getattr(store, "url", None) if store.backend == "postgres" else None
    broadcaster = WorkBroadcaster(postgres_url=postgres_url, poll_seconds=config.poll_seconds)
    api = Api(
        fleet,
        broadcaster,
        threads=config.threads,
        handoff=config.handoff,
        handoff_wait=config.handoff_wait_seconds,
        refill_idle=config.refill_idle_seconds,
        relay=RoomRelay(postgres_url),
        loop_commits=config.loop_commits,
    )
    endpoints = api.endpoints() + AnalyticsApi(analytics, api.run).endpoints()
    dispatcher = Dispatcher(authority, max_body_bytes=config.max_body_bytes)
    spec = document(endpoints, version=app_version(), max_body_bytes=config.max_body_bytes)
    dispatcher.enforce(spec)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def problem_page(request: Request) -> Response:
        code = request.path_params["code"]
        if code not in problems.STATUS:
            return problems.problem("route-not-found", f"there is no problem type '{code}'")
        return JSONResponse(
            {"code": code, "status": problems.STATUS[code], "title": problems.TITLES.get(code, code)}
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return problems.problem("route-not-found", f"no route {request.method} {request.url.path}; see /docs")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return problems.problem(
                "method-not-allowed",
                f"{request.method} is not allowed on {request.url.path}; see /docs",
                headers=exc.headers,
            )
        if exc.status_code == 404:
            return await not_found(request, exc)
        return problems.problem("invalid-request", str(exc.detail), status=exc.status_code)

    async def crash(request: Request, exc: Exception) -> Response:
        return problems.internal(exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = BackgroundServices(fleet, analytics) if config.background else None
        broadcaster.start()
        await api.start()
        if services is not None:
            services.start()
        try:
            yield
        finally:
            broadcaster.stop()
            await api.close()
            if services is not None:
                services.stop()
            if analytics is not None:
                analytics.close()

    routes = [
        *dispatcher.routes(endpoints),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/problems/{code}", problem_page, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: crash},
    )
    app.state.broadcaster = broadcaster
    app.state.fleet = fleet
    return app
