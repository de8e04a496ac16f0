"""Rendering the demo's story: a job's history, the reaped job's summary, per-tenant
tables (functions from views to lines of text), and the final report."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO
from uuid import UUID

from coordinator.fleet import Fleet
from coordinator.identity import Identity
from coordinator.projection_admin import VerifyReport
from coordinator.views import HistoryEntry, JobView, RunView

Rel = Callable[[datetime | str | None], str]
"""Formats a time relative to the demo's start."""

_COLLAPSIBLE = {"Checkpointed", "LeaseRenewed"}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), sort_keys=True)


def describe(entry: HistoryEntry, rel: Rel) -> str:
    d = entry.data
    match entry.type:
        case "JobSubmitted":
            spec = d["spec"]
            phases = " -> ".join(spec["phases"]) or "none"
            lease = f"lease {spec['lease_seconds']:g}s"
            return f"queue {spec['queue']}, {lease}, phases {phases}, state {d['state']}"
        case "LeaseGranted":
            until = rel(d["expires_at"])
            return f"to {d['factory_id']}: epoch {d['epoch']}, attempt {d['attempt']}, until {until}"
        case "LeaseRenewed":
            return f"epoch {d['epoch']} until {rel(d['expires_at'])}"
        case "LeaseExpired":
            return (
                f"epoch {d['epoch']} expired ({d['reason']}); valid until {rel(d['expired_at'])}, "
                f"last renewed {rel(d['last_renewed_at'])}; writes now need epoch > {d['epoch']} "
                f"(fencing epoch {d['new_epoch']})"
            )
        case "StaleWriteRejected":
            return (
                f"{d['command']} presented epoch {d['presented_epoch']}, current epoch {d['current_epoch']}"
            )
        case "Checkpointed":
            return f"{compact(d['checkpoint'])} (epoch {d['epoch']})"
        case "PhaseReported":
            return f"phase {d['phase']} (epoch {d['epoch']})"
        case "JobSucceeded":
            return f"epoch {d['epoch']}, result {compact(d['result'])}"
        case "JobBlocked":
            return f"waiting on {len(d['waiting_on'])} dependenc(ies)"
        case _:
            return ", ".join(f"{k}={compact(v)}" for k, v in d.items())


def history_lines(history: Sequence[HistoryEntry], rel: Rel) -> list[str]:
    """One line per event; runs of checkpoints or renewals under one epoch fold into one."""
    lines: list[str] = []
    i = 0
    while i < len(history):
        entry = history[i]
        j = i + 1
        if entry.type in _COLLAPSIBLE:
            while (
                j < len(history)
                and history[j].type == entry.type
                and history[j].data.get("epoch") == entry.data.get("epoch")
            ):
                j += 1
        run = history[i:j]
        if len(run) > 2:
            detail = f"x{len(run)}: {describe(run[0], rel)} ... {describe(run[-1], rel)}"
            versions = f"v{run[0].version}-{run[-1].version}"
        else:
            detail, versions = describe(entry, rel), f"v{entry.version}"
            j = i + 1
        lines.append(f"  {rel(entry.at):>8}  {versions:<8} {entry.type:<19} {detail}")
        i = j
    return lines


def first(history: Sequence[HistoryEntry], kind: str, **match: Any) -> HistoryEntry | None:
    return next(
        (e for e in history if e.type == kind and all(e.data.get(k) == v for k, v in match.items())), None
    )


def checkpoint_before(history: Sequence[HistoryEntry], version: int) -> Any:
    """The job's checkpoint as it stood just before event ``version``."""
    found = None
    for entry in history:
        if entry.version >= version:
            break
        if entry.type == "Checkpointed":
            found = entry.data["checkpoint"]
    return found


REASONS = {
    "factory_down": "its factory stopped sending heartbeats and was marked down",
    "lease_timeout": "the lease ran out without a renewal",
}


def reaped_summary(
    label: str, view: JobView, history: Sequence[HistoryEntry], zombie_epoch: int, rel: Rel
) -> list[str]:
    granted = first(history, "LeaseGranted", epoch=zombie_epoch)
    expired = first(history, "LeaseExpired", epoch=zombie_epoch)
    refused = [
        e for e in history if e.type == "StaleWriteRejected" and e.data["presented_epoch"] == zombie_epoch
    ]
    takeover = next((e for e in history if e.type == "LeaseGranted" and e.data["epoch"] > zombie_epoch), None)
    done = first(history, "JobSucceeded")
    if granted is None or expired is None or takeover is None or done is None:
        return [f"  (incomplete history for {label})"]
    reason = expired.data["reason"]
    lines = [
        f"Reaped job {label} ({view.id})",
        f"  held by        {granted.data['factory_id']} under epoch {zombie_epoch} from {rel(granted.at)}",
        f"  lease expired  at {rel(expired.at)}: {reason} - {REASONS[reason]}",
        f"                 (lease valid until {rel(expired.data['expired_at'])}, last renewed "
        f"{rel(expired.data['last_renewed_at'])}); checkpoint kept: "
        f"{compact(checkpoint_before(history, expired.version))}",
    ]
    for entry in refused:
        lines.append(
            f"  late write     {entry.data['command']} at {rel(entry.at)} presented epoch "
            f"{entry.data['presented_epoch']}, current epoch {entry.data['current_epoch']}: refused, "
            f"recorded as StaleWriteRejected v{entry.version}"
        )
    result = done.data["result"]
    resumed = result.get("resumed_from") if isinstance(result, dict) else None
    lines.append(
        f"  finished by    {takeover.data['factory_id']} under epoch {takeover.data['epoch']} (attempt "
        f"{takeover.data['attempt']}), resumed from checkpoint {compact({'done': resumed})}, "
        f"succeeded at {rel(done.at)}"
    )
    return lines


def tenant_table(tenant: str, rows: Sequence[tuple[str, JobView, Sequence[RunView]]]) -> list[str]:
    header = f"  {'job':<12} {'state':<10} {'attempts':>8}  {'runs (factory: outcome)':<44} result"
    lines = [f"Tenant {tenant}", header, "  " + "-" * (len(header) + 8)]
    for name, view, runs in rows:
        history = ", ".join(f"{r.factory_id}: {r.outcome or 'running'}" for r in runs) or "-"
        lines.append(
            f"  {name:<12} {view.state:<10} {view.attempts:>8}  {history:<44} {compact(view.result)}"
        )
    return lines


def print_report(
    fleet: Fleet,
    admin: Identity,
    *,
    labels: Mapping[UUID, str],
    job_id: UUID,
    epoch: int,
    rel: Rel,
    out: TextIO,
) -> VerifyReport:
    """The reaped job's history and summary, each tenant's jobs, and the projection check."""
    label = labels[job_id]
    history = fleet.history(admin, job_id)
    print(f"\nHistory of {label} (times relative to the demo's start):", file=out)
    print("\n".join(history_lines(history, rel)), file=out)
    print("", file=out)
    print("\n".join(reaped_summary(label, fleet.get(admin, job_id), history, epoch, rel)), file=out)
    for tenant in sorted({name.split("/", 1)[0] for name in labels.values()}):
        rows = [
            (name.split("/", 1)[1], fleet.get(admin, j), fleet.runs(admin, j))
            for j, name in labels.items()
            if name.startswith(tenant + "/")
        ]
        print("\n" + "\n".join(tenant_table(tenant, rows)), file=out)
    verdict = fleet.verify_projections(admin)
    if verdict.ok:
        total = sum(verdict.rows.values())
        print(
            f"\nProjections verified: {total} rows in {len(verdict.rows)} views match a rebuild of the log",
            file=out,
        )
    else:
        print(f"\nProjections differ from a rebuild of the log: {verdict.differences[:5]}", file=out)
    return verdict
