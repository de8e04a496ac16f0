"""Operator commands: migrate, reap, schedule, projections verify|rebuild, and
profiles register."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from adapters.bootstrap import analytics_settings, migrate, migrate_analytics
from adapters.cli.context import Invocation, Scope, store_errors
from adapters.cli.inputs import json_object
from adapters.cli.options import Subparsers, add_command, add_group, positive_int
from adapters.cli.output import EXIT_DIFFERENCES, EXIT_OK, Output

DIFFERENCE_COLUMNS = ("table", "only_live", "only_rebuilt", "examples")


def register(commands: Subparsers) -> None:
    add_command(commands, "migrate", run_migrate, help="apply pending schema migrations", scope=Scope.NONE)
    add_command(
        commands,
        "reap",
        run_reap,
        help="one reaper pass: expire overdue leases, mark silent factories down",
        scope=Scope.NONE,
    )
    add_command(
        commands,
        "schedule",
        run_schedule,
        help="one scheduler pass: queue jobs that are due",
        scope=Scope.NONE,
    )

    projections = add_group(commands, "projections", help="check or rebuild the views from the event log")
    add_command(
        projections,
        "verify",
        run_verify,
        help="rebuild the views in memory and compare (exit status 1 when they differ)",
        scope=Scope.OPTIONAL,
        command="projections verify",
    )
    add_command(
        projections,
        "rebuild",
        run_rebuild,
        help="replace every view with one rebuilt from the log",
        scope=Scope.OPTIONAL,
        command="projections rebuild",
    )

    profiles = add_group(commands, "profiles", help="named, versioned, immutable run profiles")
    register_profile = add_command(
        profiles,
        "register",
        run_register_profile,
        help="register a profile version (identical content again is a no-op)",
        scope=Scope.OPTIONAL,
        command="profiles register",
    )
    register_profile.add_argument("--name", required=True, metavar="N")
    register_profile.add_argument("--version", type=positive_int, required=True, metavar="V")
    register_profile.add_argument("--content", required=True, metavar="JSON", help="a JSON object")


def run_migrate(inv: Invocation, args: argparse.Namespace) -> Output:
    with store_errors(inv.settings):
        applied = migrate(inv.settings)
    where = analytics_settings(inv.settings).describe()
    analytics = migrate_analytics(inv.settings)
    footer = f"{len(applied)} migration(s) applied to {inv.settings.describe()}, {len(analytics)} to {where}"
    data = {
        "store": inv.settings.describe(),
        "applied": applied,
        "analytics": where,
        "analytics_applied": analytics,
    }
    return Output(data, footer=footer)


def run_reap(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.reaper.run_once())


def run_schedule(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.scheduler.run_once())


def run_verify(inv: Invocation, args: argparse.Namespace) -> Output:
    report = inv.fleet.verify_projections(inv.identity)
    differences = [{**asdict(d), "description": d.describe()} for d in report.differences]
    data = {"ok": report.ok, "rows": report.rows, "differences": differences}
    if report.ok:
        total = sum(report.rows.values())
        return Output(data, footer=f"views match the log ({total} rows in {len(report.rows)} views)")
    return Output(
        data,
        columns=DIFFERENCE_COLUMNS,
        rows=differences,
        footer=f"{len(differences)} view(s) differ from the log: run 'fleetlog projections rebuild'",
        exit_code=EXIT_DIFFERENCES,
    )


def run_rebuild(inv: Invocation, args: argparse.Namespace) -> Output:
    rows = inv.fleet.rebuild_projections(inv.identity)
    return Output({"rebuilt": True, "rows": rows}, exit_code=EXIT_OK)


def run_register_profile(inv: Invocation, args: argparse.Namespace) -> Output:
    spec = {"name": args.name, "version": args.version, "content": json_object(args.content, "--content")}
    return Output(inv.fleet.register_profile(inv.identity, spec))
