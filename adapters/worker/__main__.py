"""``fleetlog worker`` (``python -m adapters.worker``): a worker process.

Over HTTP with ``--url`` and ``--token`` (or ``$FLEETLOG_URL`` and ``$FLEETLOG_TOKEN``):
the token decides the tenant scope. Direct mode otherwise: an in-process ``Fleet`` on
the embedded store (``--data-dir``) or PostgreSQL (``--database-url``), scoped with
``--tenant`` or ``--all-tenants``. SIGTERM or SIGINT stop it gracefully; exit status 0
(1 when the coordinator refused the worker for good, 2 for bad arguments).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from adapters.bootstrap import Settings, build_app
from adapters.client import FleetClient
from adapters.system import freeze_startup_objects
from adapters.worker.config import DEFAULT_HEARTBEAT_INTERVAL, WorkerConfig
from adapters.worker.direct import DirectPort
from adapters.worker.http_port import DEFAULT_WAIT_SECONDS, HttpPort
from adapters.worker.port import FleetPort
from adapters.worker.registry import claim_queues, load_handlers
from adapters.worker.runtime import STOP_POLL_SECONDS, Worker
from coordinator.identity import Identity, Role
from domain.errors import DomainError

log = logging.getLogger("fleetlog.worker")

EXTRA_CONNECTIONS = 4
"""Connections beyond one per handler: claim loop, renewer, completer, heartbeat."""
URL_ENV = "FLEETLOG_URL"
TOKEN_ENV = "FLEETLOG_TOKEN"
DEFAULT_REQUEST_TIMEOUT = 10.0


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetlog worker", description=__doc__)
    p.add_argument("--handlers", required=True, help="module:attribute naming a {queue: handler} registry")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help=f"a Fleetlog server, http(s)://host:port (default ${URL_ENV})")
    where.add_argument("--data-dir", type=Path, help="embedded store directory (default $FLEETLOG_DATA_DIR)")
    where.add_argument("--database-url", help="postgresql://... (default $DATABASE_URL)")
    p.add_argument(
        "--token",
        help=f"bearer token for --url (default ${TOKEN_ENV}; prefer the variable: other users can "
        "read command lines)",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--tenant", help="direct mode: claim only this tenant's jobs")
    scope.add_argument("--all-tenants", action="store_true", help="direct mode: claim every tenant's jobs")
    p.add_argument("--factory-id", default=None, help="default: <hostname>-<pid>")
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument(
        "--prefetch", type=int, default=None, help="leases held beyond the handler threads (short jobs)"
    )
    p.add_argument("--capabilities", type=_csv, default=None, help="a,b,c")
    p.add_argument("--queues", type=_csv, default=None, help="q1,q2 (default: the handlers' queues)")
    p.add_argument("--lease-seconds", type=float, default=None)
    p.add_argument("--heartbeat-timeout", type=float, default=None)
    p.add_argument("--heartbeat-interval", type=float, default=None)
    p.add_argument(
        "--heartbeat-jitter",
        type=float,
        default=None,
        help="shorten each wait between heartbeats by a random fraction up to this (default 0.2)",
    )
    p.add_argument("--grace-seconds", type=float, default=None)
    p.add_argument(
        "--wait-seconds",
        type=float,
        default=None,
        help=f"--url: how long a claim waits on the server for work (default {DEFAULT_WAIT_SECONDS:g}, "
        "at most 30; 0: poll)",
    )
    p.add_argument(
        "--no-refill",
        action="store_true",
        default=None,
        help="--url: end each claim stream after the jobs it was opened for, instead of giving it room "
        "as handler slots free (POST /v1/claim/room)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        help=f"--url: seconds to connect and for each answer (default {DEFAULT_REQUEST_TIMEOUT:g})",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def remote_url(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The server to work for: ``--url``, else ``$FLEETLOG_URL`` unless a store was
    named on the command line (an explicit flag beats an inherited variable)."""
    if args.url:
        return str(args.url)
    if args.data_dir is None and args.database_url is None:
        return environ.get(URL_ENV) or None
    return None


def check_mode(p: argparse.ArgumentParser, args: argparse.Namespace, url: str | None) -> None:
    """Options that belong to the other mode are refused, not silently ignored."""
    if url is not None:
        if args.tenant or args.all_tenants:
            p.error("--tenant/--all-tenants are for direct mode: over --url the token decides the tenant")
        return
    remote_only = {
        "--token": args.token,
        "--wait-seconds": args.wait_seconds,
        "--request-timeout": args.request_timeout,
        "--no-refill": args.no_refill,
    }
    for flag, value in remote_only.items():
        if value is not None:
            p.error(f"{flag} needs --url (or ${URL_ENV})")
    if not (args.tenant or args.all_tenants):
        p.error("direct mode needs --tenant T or --all-tenants (or --url with a token)")


def default_factory_id() -> str:
    """``<hostname>-<pid>``, squeezed into a factory name (a-z 0-9 _ . : -, 63 chars)."""
    host = re.sub(r"[^a-z0-9_.:-]+", "-", socket.gethostname().lower()).strip("-_.:") or "worker"
    suffix = f"-{os.getpid()}"
    return host[: 63 - len(suffix)] + suffix


def worker_config(args: argparse.Namespace, factory_id: str) -> WorkerConfig:
    given = {
        "factory_id": factory_id,
        "concurrency": args.concurrency,
        "prefetch": args.prefetch,
        "capabilities": args.capabilities,
        "queues": args.queues,
        "lease_seconds": args.lease_seconds,
        "heartbeat_timeout": args.heartbeat_timeout,
        "heartbeat_interval": args.heartbeat_interval,
        "heartbeat_jitter": args.heartbeat_jitter,
        "grace_seconds": args.grace_seconds,
    }
    if args.heartbeat_timeout is not None and args.heartbeat_interval is None:
        given["heartbeat_interval"] = min(DEFAULT_HEARTBEAT_INTERVAL, args.heartbeat_timeout / 4)
    return WorkerConfig.model_validate({k: v for k, v in given.items() if v is not None})


@dataclass
class Connection:
    """What the worker talks to, and how to let go of it."""

    port: FleetPort
    describe: str
    close: Callable[[], None]


def over_http(
    args: argparse.Namespace, url: str, environ: Mapping[str, str], config: WorkerConfig
) -> Connection:
    token = args.token or environ.get(TOKEN_ENV)
    if not token:
        raise ValueError(f"--url needs a token: --token or ${TOKEN_ENV} (mint one with `fleetlog token`)")
    timeout = DEFAULT_REQUEST_TIMEOUT if args.request_timeout is None else args.request_timeout
    wait = DEFAULT_WAIT_SECONDS if args.wait_seconds is None else args.wait_seconds
    client = FleetClient(
        url, token, timeout=timeout, max_connections=min(200, config.concurrency + EXTRA_CONNECTIONS)
    )
    try:
        port = HttpPort(client, wait_seconds=wait, refill=not args.no_refill)
    except ValueError:
        client.close()
        raise
    return Connection(port, f"server {client.base_url}", client.close)


def direct(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    config: WorkerConfig,
    queues: tuple[str, ...] | None,
) -> Connection:
    env = dict(environ)
    if args.data_dir is not None:
        env.pop("DATABASE_URL", None)  # an explicit --data-dir beats an inherited URL
    pool = min(200, config.concurrency + EXTRA_CONNECTIONS)
    settings = Settings.from_env(env, data_dir=args.data_dir, database_url=args.database_url, pool_size=pool)
    fleet = build_app(settings)
    identity = Identity.of(f"worker:{config.factory_id}", args.tenant, Role.WORKER)
    port = DirectPort(fleet, identity, queues=queues)

    def close() -> None:
        port.close()
        fleet.close()

    return Connection(port, settings.describe(), close)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    environ = dict(os.environ)
    url = remote_url(args, environ)
    check_mode(p, args, url)
    factory_id = args.factory_id or default_factory_id()
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{factory_id} pid {os.getpid()}] %(name)s: %(message)s",
    )
    try:
        config = worker_config(args, factory_id)
        handlers = load_handlers(args.handlers)
        queues = claim_queues(handlers, config.queues)
    except (ValidationError, ValueError, ImportError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Only append here: the handler runs in the main thread and must take no lock.
        signal.signal(sig, lambda signum, _frame: requested.append(signum))
    try:
        connection = over_http(args, url, environ, config) if url else direct(args, environ, config, queues)
    except (ValidationError, ValueError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"worker: {exc.message}", file=sys.stderr)
        return 2
    try:
        return run(Worker(connection.port, handlers, config), connection, requested)
    finally:
        connection.close()


def run(worker: Worker, connection: Connection, requested: list[int]) -> int:
    log.info("serving %s", connection.describe)
    freeze_startup_objects()
    try:
        worker.start()
    except DomainError as exc:  # the first heartbeat: unreachable, or refused (a bad token)
        log.error("cannot start: %s", exc.message)
        worker.shutdown()
        return 1
    while not requested and not worker.stopping:
        time.sleep(STOP_POLL_SECONDS)
    if requested:
        log.info("%s received: stopping gracefully", signal.Signals(requested[0]).name)
    worker.shutdown()
    return 1 if worker.fatal is not None else 0


if __name__ == "__main__":
    sys.exit(main())
