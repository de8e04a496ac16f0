"""``fleetlog``: the command line, and its one error boundary.

Commands live in modules by area; each exposes ``register(commands)`` and is listed
in ``COMMAND_MODULES``. To add a command family (e.g. ``worker`` or ``demo``), write a
module with a ``register`` function that calls ``options.add_command`` and append it
to that tuple: nothing else changes.

Exit status: 0 success, 1 ``projections verify`` found differences, 2 a refusal or bad
input (a JSON error object on stderr; argparse usage errors also exit 2), 3 a bug.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from adapters.cli import admin_commands, analytics_commands, job_commands, read_commands, worker_commands
from adapters.cli.context import Invocation, identity_from, settings_from
from adapters.cli.options import Subparsers, add_global_options
from adapters.cli.output import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERNAL, render
from domain.errors import DomainError


class CommandModule(Protocol):
    def register(self, commands: Subparsers) -> None: ...


PROCESS_COMMANDS: dict[str, tuple[str, str]] = {
    "worker": (
        "adapters.worker.__main__",
        "run a worker process: heartbeats, batched claims, handlers, renewals, graceful stop",
    ),
    "serve": (
        "adapters.http.server",
        "serve the HTTP API (with the reaper and scheduler) on the embedded store or PostgreSQL",
    ),
    "token": ("adapters.cli.token_command", "mint a bearer token for the HTTP API and MCP"),
    "demo": (
        "adapters.demo",
        "the end-to-end demo on a fresh embedded store: two tenants, three workers, a zombie",
    ),
    "mcp": (
        "adapters.mcp.__main__",
        "a stdio MCP server: submit, get, list, history, cancel (as the holder of $FLEETLOG_TOKEN)",
    ),
}
"""Long-running programs with parsers of their own: ``fleetlog worker ...`` hands every
argument after the command to ``<module>.main(argv)``."""


COMMAND_MODULES: tuple[CommandModule, ...] = (
    job_commands,
    worker_commands,
    read_commands,
    admin_commands,
    analytics_commands,
)


def build_parser(modules: Sequence[CommandModule] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetlog",
        # Abbreviations would make --data (checkpoint) ambiguous with --data-dir, and
        # scripts should spell flags out anyway.
        allow_abbrev=False,
        description="Fleetlog: an event-sourced job coordinator. Prints JSON unless --format table.",
        epilog="exit status: 0 ok, 1 projections differ, 2 refused or bad input, 3 internal error",
    )
    add_global_options(parser, repeated=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in modules:
        module.register(commands)
    for name, (_, help_text) in PROCESS_COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)  # listed in --help; main() delegates
    return parser


def error_json(exc: DomainError) -> str:
    fields = exc.to_dict()
    body = {"error": fields.pop("code"), **fields}
    return json.dumps(body, ensure_ascii=False, default=str)


def run(args: argparse.Namespace, environ: Mapping[str, str], write: Callable[[str], Any]) -> int:
    settings = settings_from(args, environ)
    inv = Invocation(settings, identity_from(args, environ, args.scope, args.command))
    try:
        output = args.handler(inv, args)
    finally:
        inv.close()
    write(render(output, args.format) + "\n")
    return output.exit_code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PROCESS_COMMANDS:
        module = importlib.import_module(PROCESS_COMMANDS[argv[0]][0])
        code: int = module.main(argv[1:])
        return code
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return run(args, os.environ, sys.stdout.write)
    except DomainError as exc:
        sys.stderr.write(error_json(exc) + "\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``fleetlog jobs | head``): the command itself succeeded.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # the process boundary: anything else is a bug
        if os.environ.get("FLEETLOG_DEBUG"):
            traceback.print_exc()
        body = {
            "error": "internal-error",
            "message": f"unexpected {type(exc).__name__}: {exc}; this is a bug in Fleetlog, "
            "please report it (set FLEETLOG_DEBUG=1 to print the traceback)",
        }
        sys.stderr.write(json.dumps(body, default=str) + "\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
