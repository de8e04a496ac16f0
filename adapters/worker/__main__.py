"""``python -m adapters.worker``: a direct-mode worker (in-process ``Fleet`` on the
embedded store or PostgreSQL). SIGTERM or SIGINT stop it gracefully; exit status 0."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from adapters.bootstrap import Settings, build_app
from adapters.worker.config import DEFAULT_HEARTBEAT_INTERVAL, WorkerConfig
from adapters.worker.direct import DirectPort
from adapters.worker.registry import claim_queues, load_handlers
from adapters.worker.runtime import STOP_POLL_SECONDS, Worker
from coordinator.identity import Identity, Role

log = logging.getLogger("fleetlog.worker")

EXTRA_CONNECTIONS = 4
"""Pool connections beyond one per handler: claim loop, renewer, completer, heartbeat."""


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetlog worker", description=__doc__)
    p.add_argument("--handlers", required=True, help="module:attribute naming a {queue: handler} registry")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir", type=Path, help="embedded store directory (default $FLEETLOG_DATA_DIR)")
    store.add_argument("--database-url", help="postgresql://... (default $DATABASE_URL)")
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant", help="claim only this tenant's jobs")
    scope.add_argument("--all-tenants", action="store_true", help="claim every tenant's jobs")
    p.add_argument("--factory-id", required=True)
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument(
        "--prefetch", type=int, default=None, help="leases held beyond the handler threads (short jobs)"
    )
    p.add_argument("--capabilities", type=_csv, default=None, help="a,b,c")
    p.add_argument("--queues", type=_csv, default=None, help="q1,q2 (default: the handlers' queues)")
    p.add_argument("--lease-seconds", type=float, default=None)
    p.add_argument("--heartbeat-timeout", type=float, default=None)
    p.add_argument("--heartbeat-interval", type=float, default=None)
    p.add_argument("--grace-seconds", type=float, default=None)
    p.add_argument("--log-level", default="INFO")
    return p


def worker_config(args: argparse.Namespace) -> WorkerConfig:
    given = {
        "factory_id": args.factory_id,
        "concurrency": args.concurrency,
        "prefetch": args.prefetch,
        "capabilities": args.capabilities,
        "queues": args.queues,
        "lease_seconds": args.lease_seconds,
        "heartbeat_timeout": args.heartbeat_timeout,
        "heartbeat_interval": args.heartbeat_interval,
        "grace_seconds": args.grace_seconds,
    }
    if args.heartbeat_timeout is not None and args.heartbeat_interval is None:
        given["heartbeat_interval"] = min(DEFAULT_HEARTBEAT_INTERVAL, args.heartbeat_timeout / 4)
    return WorkerConfig.model_validate({k: v for k, v in given.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{args.factory_id} pid {os.getpid()}] %(name)s: %(message)s",
    )
    try:
        config = worker_config(args)
        handlers = load_handlers(args.handlers)
        queues = claim_queues(handlers, config.queues)
        pool = min(200, config.concurrency + EXTRA_CONNECTIONS)
        environ = dict(os.environ)
        if args.data_dir is not None:
            environ.pop("DATABASE_URL", None)  # an explicit --data-dir beats an inherited URL
        settings = Settings.from_env(
            environ, data_dir=args.data_dir, database_url=args.database_url, pool_size=pool
        )
    except (ValidationError, ValueError, ImportError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Only append here: the handler runs in the main thread and must take no lock.
        signal.signal(sig, lambda signum, _frame: requested.append(signum))
    fleet = build_app(settings)
    identity = Identity.of(f"worker:{config.factory_id}", args.tenant, Role.WORKER)
    port = DirectPort(fleet, identity, queues=queues)
    worker = Worker(port, handlers, config)
    try:
        log.info("serving %s", settings.describe())
        worker.start()
        while not requested and not worker.stopping:
            time.sleep(STOP_POLL_SECONDS)
        if requested:
            log.info("%s received: stopping gracefully", signal.Signals(requested[0]).name)
        worker.shutdown()
    finally:
        port.close()
        fleet.close()
    return 1 if worker.fatal is not None else 0


if __name__ == "__main__":
    sys.exit(main())
