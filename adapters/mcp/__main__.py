"""``fleetlog mcp`` (or ``python -m adapters.mcp``): a stdio MCP server with the tools
submit, get, list, history and cancel, acting as the holder of ``$FLEETLOG_TOKEN``.

The store is chosen as for every other command (``--data-dir``/``$FLEETLOG_DATA_DIR`` or
``--database-url``/``$DATABASE_URL``); the token must be signed with that store's secret
(``$FLEETLOG_JWT_SECRET``, or the embedded store's ``jwt.secret``). A missing, invalid or
expired token, a missing secret or an unreachable store stop the server before it
serves: a JSON error object on stderr and exit status 2, as the CLI reports refusals.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import anyio
from pydantic import ValidationError

from adapters.bootstrap import build_app
from adapters.cli.context import settings_from, store_errors
from adapters.cli.main import error_json
from adapters.cli.output import EXIT_ERROR, EXIT_INTERNAL, EXIT_OK
from adapters.mcp.credentials import TOKEN_VAR, Credentials
from adapters.mcp.server import build_server, serve_stdio
from coordinator.errors import InvalidRequest, validation_errors
from coordinator.fleet import Fleet
from domain.errors import DomainError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fleetlog mcp",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"environment: {TOKEN_VAR} (required), FLEETLOG_JWT_SECRET, FLEETLOG_DATA_DIR, DATABASE_URL",
        allow_abbrev=False,
    )
    p.add_argument("--data-dir", metavar="DIR", help="embedded store directory (default: $FLEETLOG_DATA_DIR)")
    p.add_argument("--database-url", metavar="URL", help="PostgreSQL URL (default: $DATABASE_URL)")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="what the server logs on stderr (stdout carries the protocol)",
    )
    return p


def open_fleet(args: argparse.Namespace) -> tuple[Fleet, Credentials]:
    """Check the token before opening the store: a caller without a valid token gets
    nothing, not even a migrated database."""
    try:
        settings = settings_from(args, os.environ)
    except ValidationError as exc:
        raise InvalidRequest("settings", validation_errors(exc)) from None
    credentials = Credentials.from_env(os.environ, settings)
    with store_errors(settings):
        fleet = build_app(settings)
    return fleet, credentials


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [fleetlog mcp pid {os.getpid()}] %(name)s: %(message)s",
    )
    try:
        fleet, credentials = open_fleet(args)
    except DomainError as exc:
        sys.stderr.write(error_json(exc) + "\n")
        return EXIT_ERROR
    except Exception as exc:  # the process boundary: anything else is a bug
        traceback.print_exc()
        body = {"error": "internal-error", "message": f"unexpected {type(exc).__name__} at start: {exc}"}
        sys.stderr.write(json.dumps(body, default=str) + "\n")
        return EXIT_INTERNAL
    try:
        anyio.run(serve_stdio, build_server(fleet, credentials))
    except KeyboardInterrupt:
        return 130
    finally:
        fleet.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
