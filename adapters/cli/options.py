"""The options every command shares, argument types, and ``add_command``, which each
command module uses to register its subcommands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any
from uuid import UUID

from adapters.cli.context import Invocation, Scope
from adapters.cli.output import FORMATS, Output

Handler = Callable[[Invocation, argparse.Namespace], Output]
Subparsers = Any
"""argparse's ``_SubParsersAction`` (private, so not named in signatures)."""


def add_global_options(parser: argparse.ArgumentParser, *, repeated: bool) -> None:
    """The store, identity and format options. They are accepted before the subcommand
    and again after it; the copy after it has no defaults (SUPPRESS), so it overrides
    the top-level value only when given."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if repeated else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--format", choices=FORMATS, default=default("json"), help="output format (default: json)"
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default(None),
        help="embedded SQLite store directory (default: $FLEETLOG_DATA_DIR or .fleetlog)",
    )
    group.add_argument(
        "--database-url",
        metavar="URL",
        default=default(None),
        help="PostgreSQL URL (default: $DATABASE_URL); overrides the embedded store",
    )
    group.add_argument(
        "--tenant", metavar="T", default=default(None), help="act in this tenant (default: $FLEETLOG_TENANT)"
    )
    group.add_argument(
        "--all-tenants",
        action="store_true",
        default=default(False),
        help="act fleet-wide, across every tenant",
    )
    group.add_argument(
        "--subject", metavar="NAME", default=default(None), help="who is acting (default: OS user name)"
    )


def add_command(
    subparsers: Subparsers,
    name: str,
    handler: Handler,
    *,
    help: str,
    scope: Scope,
    command: str | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand parser with the global options, bound to ``handler``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description or help, allow_abbrev=False
    )
    add_global_options(parser, repeated=True)
    parser.set_defaults(handler=handler, scope=scope, command=command or name)
    return parser


def add_group(subparsers: Subparsers, name: str, *, help: str) -> Subparsers:
    """A command with subcommands of its own (``profiles register``)."""
    parser = subparsers.add_parser(name, help=help, description=help, allow_abbrev=False)
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


# ------------------------------------------------------------------ argument types


def job_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a job id (a UUID, as printed by submit or jobs)"
        ) from None


def csv_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; pass 0 or more")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("pass 1 or more")
    return value


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}: pass a finite number")
    return value


def positive_seconds(text: str) -> float:
    value = _number(text, "a number of seconds")
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text} is out of range: pass seconds in (0, 86400]")
    return value


def optional_seconds(text: str) -> float | None:
    """Seconds, or ``none`` to switch the limit off."""
    return None if text.strip().lower() == "none" else positive_seconds(text)


def non_negative_float(text: str) -> float:
    value = _number(text, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; pass 0 or more")
    return value
