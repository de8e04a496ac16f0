"""Reader commands: jobs (keyset-paginated), show, history, replay, runs."""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli.context import Invocation, Scope
from adapters.cli.options import Subparsers, add_command, csv_list, job_id, positive_int
from adapters.cli.output import Output

JOB_COLUMNS = ("id", "state", "queue", "priority", "attempts", "epoch", "phase", "created_at")
HISTORY_COLUMNS = ("version", "type", "at", "summary")
RUN_COLUMNS = ("attempt", "epoch", "factory_id", "started_at", "ended_at", "outcome", "error_kind")


def register(commands: Subparsers) -> None:
    jobs = add_command(
        commands, "jobs", run_jobs, help="list jobs, newest last, a page at a time", scope=Scope.REQUIRED
    )
    jobs.add_argument(
        "--state",
        dest="states",
        action="append",
        type=csv_list,
        metavar="S",
        help="only jobs in this state (repeatable, or comma-separated)",
    )
    jobs.add_argument("--queue", metavar="Q")
    jobs.add_argument("--key", metavar="K", help="only the job with this idempotency key")
    jobs.add_argument("--parent", type=job_id, metavar="ID", help="only children of this job")
    jobs.add_argument("--limit", type=positive_int, default=100, metavar="N", help="page size (default: 100)")
    jobs.add_argument("--cursor", metavar="C", help="the next_cursor of the previous page")

    show = add_command(commands, "show", run_show, help="a job's current state", scope=Scope.REQUIRED)
    show.add_argument("job", type=job_id, metavar="JOB")
    history = add_command(
        commands, "history", run_history, help="a job's events, in order", scope=Scope.REQUIRED
    )
    history.add_argument("job", type=job_id, metavar="JOB")
    replay = add_command(
        commands, "replay", run_replay, help="a job as it was after event VERSION", scope=Scope.REQUIRED
    )
    replay.add_argument("job", type=job_id, metavar="JOB")
    replay.add_argument("--version", type=positive_int, required=True, metavar="N")
    runs = add_command(commands, "runs", run_runs, help="a job's runs (attempts)", scope=Scope.REQUIRED)
    runs.add_argument("job", type=job_id, metavar="JOB")


def run_jobs(inv: Invocation, args: argparse.Namespace) -> Output:
    states = None if args.states is None else tuple(s for group in args.states for s in group)
    page = inv.fleet.list_jobs(
        inv.identity,
        states=states or None,
        queue=args.queue,
        idempotency_key=args.key,
        parent_id=args.parent,
        limit=args.limit,
        cursor=args.cursor,
    )
    footer = "last page" if page.next_cursor is None else f"next page: --cursor {page.next_cursor}"
    return Output(page, columns=JOB_COLUMNS, rows=page.jobs, footer=footer)


def run_show(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.get(inv.identity, args.job))


def run_history(inv: Invocation, args: argparse.Namespace) -> Output:
    entries = inv.fleet.history(inv.identity, args.job)
    rows = [{**e.model_dump(mode="json"), "summary": summary(e.data)} for e in entries]
    return Output(entries, columns=HISTORY_COLUMNS, rows=rows)


def run_replay(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.state_at(inv.identity, args.job, args.version))


def run_runs(inv: Invocation, args: argparse.Namespace) -> Output:
    return Output(inv.fleet.runs(inv.identity, args.job), columns=RUN_COLUMNS)


def summary(data: dict[str, Any]) -> str:
    """An event's fields on one line: plain values first, nested ones as ``{…}``."""
    plain = [f"{k}={v}" for k, v in data.items() if v is not None and not isinstance(v, dict | list)]
    nested = [f"{k}={{…}}" for k, v in data.items() if isinstance(v, dict | list) and v]
    return " ".join(plain + nested)
