"""Submitter commands: submit, submit-batch, cancel, requeue."""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli.context import Invocation, Scope
from adapters.cli.errors import WrongJsonType
from adapters.cli.inputs import STDIN, json_object, parse_json, read_text
from adapters.cli.options import (
    Subparsers,
    add_command,
    csv_list,
    job_id,
    positive_int,
    positive_seconds,
)
from adapters.cli.output import Output

BATCH_COLUMNS = ("index", "ok", "job_id", "outcome", "state", "error")


def register(commands: Subparsers) -> None:
    submit = add_command(
        commands,
        "submit",
        run_submit,
        help="submit one job: a JSON spec and/or flags (flags override the spec's keys)",
        scope=Scope.OPTIONAL,
    )
    source = submit.add_mutually_exclusive_group()
    source.add_argument("--spec", metavar="JSON", help="the job spec as JSON ('-' reads stdin)")
    source.add_argument("--spec-file", metavar="PATH", help="a file holding the JSON spec ('-': stdin)")
    add_spec_flags(submit)

    batch = add_command(
        commands,
        "submit-batch",
        run_submit_batch,
        help="submit a JSON array of specs in one transaction",
        description="submit a JSON array of specs in one transaction; each item succeeds or "
        "fails on its own (check each item's ok: the exit status is 0 unless the whole batch "
        "is refused)",
        scope=Scope.OPTIONAL,
    )
    batch.add_argument("--file", required=True, metavar="PATH", help="JSON array of job specs ('-': stdin)")

    cancel = add_command(
        commands, "cancel", run_cancel, help="cancel a job that has not finished", scope=Scope.REQUIRED
    )
    cancel.add_argument("job", type=job_id, metavar="JOB")
    cancel.add_argument("--reason", default="cancelled", help="recorded with the cancel (default: cancelled)")

    requeue = add_command(
        commands,
        "requeue",
        run_requeue,
        help="give a dead-lettered job a fresh set of attempts",
        scope=Scope.REQUIRED,
    )
    requeue.add_argument("job", type=job_id, metavar="JOB")


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("spec flags (override keys of the JSON spec)")
    group.add_argument("--idempotency-key", metavar="KEY")
    group.add_argument("--queue", metavar="Q")
    group.add_argument(
        "--priority", metavar="P", help="critical, high, medium, low or 0-100 (lower runs sooner)"
    )
    group.add_argument("--capabilities", type=csv_list, metavar="A,B", help="what a worker needs to run it")
    group.add_argument(
        "--dep", dest="deps", action="append", type=job_id, metavar="ID", help="a dependency (repeatable)"
    )
    group.add_argument("--deps-mode", choices=("hard", "soft"), help="mode of the dependencies given")
    group.add_argument("--run-at", metavar="ISO", help="not before this time, e.g. 2026-01-05T09:00:00Z")
    group.add_argument("--payload", metavar="JSON", help="the payload, a JSON object")
    group.add_argument("--lease-seconds", type=positive_seconds, metavar="S")
    group.add_argument("--max-attempts", type=positive_int, metavar="N")
    group.add_argument("--phases", type=csv_list, metavar="A,B", help="the job's declared phases, in order")
    group.add_argument("--parent-id", type=job_id, metavar="ID")


def spec_from(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.spec is not None:
        text = read_text(STDIN, "--spec") if args.spec == STDIN else args.spec
        spec = json_object(text, "--spec")
    elif args.spec_file is not None:
        spec = json_object(read_text(args.spec_file, "--spec-file"), "--spec-file")
    flags = {
        "idempotency_key": args.idempotency_key,
        "queue": args.queue,
        "priority": args.priority,
        "capabilities": None if args.capabilities is None else list(args.capabilities),
        "deps": None if args.deps is None else [str(d) for d in args.deps],
        "deps_mode": args.deps_mode,
        "run_at": args.run_at,
        "payload": None if args.payload is None else json_object(args.payload, "--payload"),
        "lease_seconds": args.lease_seconds,
        "phases": None if args.phases is None else list(args.phases),
        "parent_id": None if args.parent_id is None else str(args.parent_id),
    }
    spec.update({key: value for key, value in flags.items() if value is not None})
    if args.max_attempts is not None:
        retry = spec.get("retry")
        if retry is None or isinstance(retry, dict):  # anything else: let validation name it
            spec["retry"] = {**(retry or {}), "max_attempts": args.max_attempts}
    return spec


def run_submit(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.submit(inv.identity, spec_from(args)))


def run_submit_batch(inv: Invocation, args: argparse.Namespace) -> Output:
    specs = parse_json(read_text(args.file, "--file"), "--file")
    if not isinstance(specs, list):
        raise WrongJsonType("--file", "array of job specs", specs)
    results = inv.fleet.submit_many(inv.identity, specs)
    rows = [
        {
            **r.model_dump(mode="json", exclude={"error"}),
            "error": None if r.error is None else f"{r.error.code}: {r.error.message}",
        }
        for r in results
    ]
    failed = sum(not r.ok for r in results)
    footer = f"{len(results) - failed} submitted, {failed} refused"
    return Output(results, columns=BATCH_COLUMNS, rows=rows, footer=footer)


def run_cancel(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.cancel(inv.identity, args.job, args.reason))


def run_requeue(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.requeue(inv.identity, args.job))
