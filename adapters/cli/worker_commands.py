"""Worker commands: claim, the fenced writes under a lease (renew, release, start,
phase, checkpoint, succeed, fail), heartbeats and the factory list.

Every fenced write presents ``--epoch``; a stale one is refused (``stale-epoch``) and
the refusal recorded. Writes that return nothing print the job as it now stands.
"""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli.context import Invocation, Scope
from adapters.cli.inputs import build_model, json_object, parse_json
from adapters.cli.options import (
    Handler,
    Subparsers,
    add_command,
    csv_list,
    job_id,
    non_negative_float,
    non_negative_int,
    optional_seconds,
    positive_int,
    positive_seconds,
)
from adapters.cli.output import Output
from coordinator.claiming import ClaimRequest
from domain.factory import Health
from domain.job.spec import ErrorInfo, RunInsights

CLAIM_COLUMNS = ("id", "epoch", "lease_expires_at", "queue", "priority", "attempts", "tenant")
FACTORY_COLUMNS = ("factory_id", "health", "stale", "capabilities", "seat_limit", "load", "last_heartbeat_at")


def register(commands: Subparsers) -> None:
    claim = add_command(
        commands, "claim", run_claim, help="lease the best available jobs for a factory", scope=Scope.REQUIRED
    )
    claim.add_argument("--factory", required=True, metavar="ID", help="the claiming factory's name")
    claim.add_argument(
        "--capabilities", type=csv_list, metavar="A,B", help="what it can run (default: its registered ones)"
    )
    claim.add_argument("--max-jobs", type=positive_int, default=1, metavar="N", help="default: 1")
    claim.add_argument(
        "--lease-seconds", type=positive_seconds, metavar="S", help="default: each job's own lease length"
    )
    claim.add_argument(
        "--queue", dest="queues", action="append", metavar="Q", help="only this queue (repeatable)"
    )
    _register_fenced(commands)
    _register_factories(commands)


def _fenced(commands: Subparsers, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    parser = add_command(commands, name, handler, help=help, scope=Scope.REQUIRED)
    parser.add_argument("job", type=job_id, metavar="JOB")
    parser.add_argument(
        "--epoch", type=non_negative_int, required=True, metavar="N", help="the lease epoch from claim"
    )
    return parser


def _register_fenced(commands: Subparsers) -> None:
    renew = _fenced(commands, "renew", run_renew, "extend the lease (answers whether a cancel was requested)")
    renew.add_argument("--lease-seconds", type=positive_seconds, metavar="S", help="default: the job's own")
    release = _fenced(commands, "release", run_release, "give the job back to the queue unfinished")
    release.add_argument("--reason", default="released by worker")
    _fenced(commands, "start", run_start, "report that work on the job started")
    phase = _fenced(commands, "phase", run_phase, "report the phase the job reached")
    phase.add_argument("--phase", required=True, metavar="NAME", help="one of the job's declared phases")
    checkpoint = _fenced(commands, "checkpoint", run_checkpoint, "save progress to resume from")
    checkpoint.add_argument("--data", required=True, metavar="JSON", help="the checkpoint, any JSON")
    succeed = _fenced(commands, "succeed", run_succeed, "finish the job successfully")
    succeed.add_argument("--result", metavar="JSON", help="the result, any JSON")
    succeed.add_argument("--insights", metavar="JSON", help="usage of this run (RunInsights object)")
    fail = _fenced(commands, "fail", run_fail, "report a failed attempt (it retries unless told not to)")
    fail.add_argument("--kind", required=True, metavar="K", help="error kind, e.g. timeout")
    fail.add_argument("--message", required=True, metavar="M")
    fail.add_argument("--not-retryable", action="store_true", help="do not retry: dead-letter the job now")
    fail.add_argument("--insights", metavar="JSON", help="usage of this run (RunInsights object)")


def _register_factories(commands: Subparsers) -> None:
    beat = add_command(
        commands,
        "heartbeat",
        run_heartbeat,
        help="report a factory alive; a heartbeat states the whole report, omitted options "
        "take their defaults (a factory marked down rejoins with it)",
        scope=Scope.OPTIONAL,
    )
    beat.add_argument("--factory", required=True, metavar="ID")
    beat.add_argument("--capabilities", type=csv_list, default=(), metavar="A,B")
    beat.add_argument("--health", choices=[h.value for h in Health], default=Health.OK.value)
    beat.add_argument("--load", type=non_negative_float, default=0.0, metavar="X")
    beat.add_argument("--seat-limit", type=positive_int, metavar="N", help="default: unlimited")
    beat.add_argument(
        "--timeout",
        type=optional_seconds,
        default=60.0,
        metavar="S",
        help="mark it down after S seconds without a heartbeat (default: 60; 'none': never)",
    )
    add_command(commands, "factories", run_factories, help="list factories", scope=Scope.OPTIONAL)


def _insights(args: argparse.Namespace) -> RunInsights | None:
    if args.insights is None:
        return None
    return build_model(RunInsights, json_object(args.insights, "--insights"), "insights")


def _job_now(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.get(inv.identity, args.job))


def run_claim(inv: Invocation, args: argparse.Namespace) -> Output:
    request = build_model(
        ClaimRequest,
        {
            "factory_id": args.factory,
            "capabilities": args.capabilities,
            "max_jobs": args.max_jobs,
            "lease_seconds": args.lease_seconds,
            "queues": args.queues,
        },
        "claim",
    )
    claimed = inv.fleet.claim(inv.identity, request)
    rows = [
        {**c.job.model_dump(mode="json"), "epoch": c.epoch, "lease_expires_at": c.lease_expires_at}
        for c in claimed
    ]
    return Output(claimed, columns=CLAIM_COLUMNS, rows=rows, footer=f"claimed {len(claimed)} job(s)")


def run_renew(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.renew(inv.identity, args.job, args.epoch, args.lease_seconds))


def run_release(inv: Invocation, args: argparse.Namespace) -> Output:
    inv.fleet.release(inv.identity, args.job, args.epoch, args.reason)
    return _job_now(inv, args)


def run_start(inv: Invocation, args: argparse.Namespace) -> Output:
    inv.fleet.start(inv.identity, args.job, args.epoch)
    return _job_now(inv, args)


def run_phase(inv: Invocation, args: argparse.Namespace) -> Output:
    inv.fleet.report_phase(inv.identity, args.job, args.epoch, args.phase)
    return _job_now(inv, args)


def run_checkpoint(inv: Invocation, args: argparse.Namespace) -> Output:
    inv.fleet.checkpoint(inv.identity, args.job, args.epoch, parse_json(args.data, "--data"))
    return _job_now(inv, args)


def run_succeed(inv: Invocation, args: argparse.Namespace) -> Output:
    result = None if args.result is None else parse_json(args.result, "--result")
    inv.fleet.succeed(inv.identity, args.job, args.epoch, result, _insights(args))
    return _job_now(inv, args)


def run_fail(inv: Invocation, args: argparse.Namespace) -> Output:
    error = build_model(
        ErrorInfo, {"kind": args.kind, "message": args.message, "retryable": not args.not_retryable}, "error"
    )
    inv.fleet.fail(inv.identity, args.job, args.epoch, error, _insights(args))
    return _job_now(inv, args)


def run_heartbeat(inv: Invocation, args: argparse.Namespace) -> Output:
    report: dict[str, Any] = {
        "factory_id": args.factory,
        "capabilities": list(args.capabilities),
        "health": args.health,
        "load": args.load,
        "seat_limit": args.seat_limit,
        "heartbeat_timeout_seconds": args.timeout,
    }
    return Output(inv.fleet.heartbeat(inv.identity, report))


def run_factories(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.list_factories(inv.identity), columns=FACTORY_COLUMNS)
