"""``fleetlog serve``: the HTTP API under uvicorn, with the background services.

On the embedded store unless ``DATABASE_URL`` (or ``--database-url``) is set. SIGTERM
or SIGINT: stop accepting connections, answer waiting long-polls at once, let requests
in flight finish (up to ``--grace-seconds``), stop the reaper and scheduler, close the
store. Prints one line ``fleetlog listening on http://HOST:PORT`` to stdout when ready
(``--port 0`` picks a free port; the line says which). ``--processes N`` serves the one
socket from N processes (``processes.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from adapters.analytics.runtime import AnalyticsRuntime
from adapters.auth import TokenAuthority, load_secret
from adapters.bootstrap import Settings, analytics_settings, build_app
from adapters.http.app import DEFAULT_MAX_BODY_BYTES, ApiConfig, create_app
from adapters.http.claims import DEFAULT_HANDOFF_WAIT, MAX_HANDOFF_WAIT
from adapters.http.coalescing import CoalescingProtocol
from adapters.http.processes import Supervisor
from adapters.http.waiting import WorkBroadcaster
from adapters.system import (
    MAX_SWITCH_INTERVAL_SECONDS,
    SERVER_SWITCH_INTERVAL_SECONDS,
    freeze_startup_objects,
    set_switch_interval,
)
from coordinator.reaper import ReaperConfig
from domain.errors import DomainError

log = logging.getLogger("fleetlog.serve")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetlog serve", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0: any free port")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir", type=Path, help="embedded store directory (default $FLEETLOG_DATA_DIR)")
    store.add_argument("--database-url", help="postgresql://... (default $DATABASE_URL)")
    p.add_argument(
        "--pool-size", type=int, default=None, help="PostgreSQL connections kept open (per process)"
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="server processes on the one socket (PostgreSQL only; e.g. one per core). Default 1",
    )
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    p.add_argument("--reaper-interval", type=float, default=None, help="seconds between reaper passes")
    p.add_argument("--no-background", action="store_true", help="do not run the reaper and scheduler here")
    p.add_argument(
        "--no-analytics",
        action="store_true",
        help="do not follow the log into ClickHouse here (the analytics routes answer 503)",
    )
    p.add_argument(
        "--analytics-database",
        default=None,
        metavar="NAME",
        help="ClickHouse database (default $FLEETLOG_CLICKHOUSE_DATABASE or fleetlog)",
    )
    p.add_argument(
        "--no-handoff",
        action="store_true",
        help="never give a new job straight to a waiting long-poll claim (every job goes through the queue)",
    )
    p.add_argument(
        "--handoff-wait",
        type=_handoff_wait,
        default=None,
        metavar="SECONDS",
        help=(
            "longest a submit waits for a worker that is in a claim of its own or between two claim "
            f"streams, rather than queue its job (0-{MAX_HANDOFF_WAIT:g}; default {DEFAULT_HANDOFF_WAIT:g})"
        ),
    )
    p.add_argument(
        "--no-loop-commits",
        action="store_true",
        help=(
            "run every unit of work on a thread (default on PostgreSQL: a hand-over submit that needs "
            "no read before its commit runs on the event loop and sends its one round trip from there)"
        ),
    )
    p.add_argument(
        "--switch-interval",
        type=_switch_interval,
        default=SERVER_SWITCH_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=(
            "how long the event loop's thread may keep Python's GIL from a thread whose database "
            f"answer has arrived (0-{MAX_SWITCH_INTERVAL_SECONDS:g}; default "
            f"{SERVER_SWITCH_INTERVAL_SECONDS:g}; CPython's own is 0.005)"
        ),
    )
    p.add_argument(
        "--grace-seconds", type=float, default=10.0, help="on SIGTERM: time for requests in flight"
    )
    p.add_argument("--log-level", default="INFO")
    return p


class Server(uvicorn.Server):
    """Answers waiting long-polls as soon as a stop is asked for, so they do not hold
    the graceful shutdown for their whole wait."""

    def __init__(self, config: uvicorn.Config, broadcaster: WorkBroadcaster):
        super().__init__(config)
        self.broadcaster = broadcaster

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.broadcaster.begin_shutdown()
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal after its graceful shutdown, so the process
        # would end "killed by SIGTERM"; a completed graceful stop exits 0 instead.
        self._captured_signals.clear()


def _seconds(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """An argparse type: seconds from ``low`` (or above it) to ``high``."""
    bounds = f"more than {low:g} and at most {high:g}" if above_low else f"{low:g}-{high:g}"

    def parse(text: str) -> float:
        try:
            seconds = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not (low < seconds if above_low else low <= seconds) or seconds > high:
            raise argparse.ArgumentTypeError(f"must be {bounds} seconds, got {text}")
        return seconds

    return parse


_handoff_wait = _seconds(0, MAX_HANDOFF_WAIT)
_switch_interval = _seconds(0, MAX_SWITCH_INTERVAL_SECONDS, above_low=True)


def api_config(args: argparse.Namespace, *, leader: bool) -> ApiConfig:
    return ApiConfig(
        max_body_bytes=args.max_body_bytes,
        background=leader and not args.no_background,
        handoff=not args.no_handoff,
        loop_commits=not args.no_loop_commits,
        **({} if args.handoff_wait is None else {"handoff_wait_seconds": args.handoff_wait}),
    )


def uvicorn_config(app: Any, **options: Any) -> uvicorn.Config:
    """How every Fleetlog server runs under uvicorn (``fleetlog serve``, the tests'
    servers): httptools with a response's writes coalesced, no access log, lifespan on."""
    return uvicorn.Config(app, http=CoalescingProtocol, access_log=False, lifespan="on", **options)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket. The protocol is named explicitly: asyncio turns on
    TCP_NODELAY for accepted connections only when the socket says IPPROTO_TCP, and
    without it Nagle's algorithm holds each response's second packet for the client's
    delayed ACK (about 40 ms per request on a kept-alive connection)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, while uvicorn starts
    except OSError:
        sock.close()
        raise
    return sock


def settings_for(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if args.data_dir:
        env.pop("DATABASE_URL", None)
    overrides: dict[str, object] = {"data_dir": args.data_dir, "database_url": args.database_url}
    if args.pool_size:
        overrides["pool_size"] = args.pool_size
    if args.reaper_interval:
        overrides["reaper"] = ReaperConfig(interval_seconds=args.reaper_interval)
    if args.analytics_database:
        overrides["clickhouse_database"] = args.analytics_database
    return Settings.from_env(env, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_for(args)
        secret = load_secret(os.environ, settings.data_dir, embedded=settings.database_url is None)
    except DomainError as exc:
        sys.stderr.write(f"fleetlog serve: {exc.message}\n")
        return 2
    if args.processes > 1 and settings.database_url is None:
        sys.stderr.write(
            "fleetlog serve: --processes above 1 needs PostgreSQL (set DATABASE_URL or --database-url): "
            "the embedded store serves one process\n"
        )
        return 2
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        sys.stderr.write(f"fleetlog serve: cannot listen on {args.host}:{args.port}: {exc.strerror}\n")
        return 2
    port = sock.getsockname()[1]

    def announce() -> None:
        print(f"fleetlog listening on http://{args.host}:{port}", flush=True)

    with sock:
        if args.processes == 1:
            return serve(args, settings, secret, sock, leader=True, ready=announce)
        # Each child serves the socket; only the first runs the background services and
        # the analytics consumer (an embedded ClickHouse opens in one process only).
        supervisor = Supervisor(
            args.processes,
            lambda index, ready: serve(args, settings, secret, sock, leader=index == 0, ready=ready),
        )
        return supervisor.run(announce)


def serve(
    args: argparse.Namespace,
    settings: Settings,
    secret: bytes,
    sock: socket.socket,
    *,
    leader: bool,
    ready: Callable[[], None],
) -> int:
    """One server process on ``sock``; ``leader``: it also runs the reaper, the scheduler
    and the analytics consumer (unless turned off)."""
    try:
        authority = TokenAuthority(secret)
        fleet = build_app(settings)
        analytics = (
            None if args.no_analytics or not leader else AnalyticsRuntime(fleet, analytics_settings(settings))
        )
    except DomainError as exc:
        sys.stderr.write(f"fleetlog serve: {exc.message}\n")
        return 2
    try:
        app = create_app(fleet, authority, api_config(args, leader=leader), analytics)
        server = Server(
            uvicorn_config(
                app,
                log_level=args.log_level.lower(),
                timeout_graceful_shutdown=max(1, int(args.grace_seconds)),
            ),
            app.state.broadcaster,
        )
        log.info("store: %s", settings.describe())
        freeze_startup_objects()
        set_switch_interval(args.switch_interval)
        ready()
        server.run(sockets=[sock])
    finally:
        fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
