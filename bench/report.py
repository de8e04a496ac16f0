#!/usr/bin/env python
"""Build bench/RESULTS.md from one session's JSON (bench/run.sh writes them):
Fleetlog against PgQueuer (strict and idiomatic setups), medians with min/max, the
Fleetlog/PgQueuer ratios, the CPU the harness measured, the machine and the command.

    .venv/bin/python bench/report.py [--results bench/results] [--out bench/RESULTS.md]

The detailed table at the end reuses the peers' make_report.py (rows_for), so its rows
read exactly like ../shared/bench-peers/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("BENCH_PEERS_DIR", HERE.parent.parent / "shared" / "bench-peers")).resolve()

FLEETLOG, STRICT, IDIOMATIC, PGBENCH = "fleetlog", "pgqueuer", "pgqueuer-idiomatic", "pgbench-simple"
PREFETCH = "fleetlog-prefetch"
HTTP = "fleetlog-http"
HTTP_QUEUE = "fleetlog-http-queue"
HTTP_PROCS = "fleetlog-http-procs"
HTTP_PREFETCH = "fleetlog-http-prefetch"
ANALYTICS = "analytics"
REBUILD_TARGET, LAG_P99_TARGET, ANALYTICS_MIN_EVENTS = 20_000, 1.0, 200_000
"""Issue 4's targets: rebuild >= 20,000 events/s (embedded engine), live lag p99 < 1 s during the
drain, over a log of at least 200,000 events."""
DRAIN_TARGET, P99_TARGET = 0.5, 1.0
"""Issue 3's targets: HTTP drain / direct drain >= 0.5; HTTP W3 p99 / PgQueuer strict W3 p99 <= 1.0."""
FULL_N, FULL_REPEATS = 20_000, 3


STEP_OF = {PGBENCH: "pgbench"}
"""A result file's step in bench/run.sh, where the names differ."""


def session_steps(results: Path) -> set[str] | None:
    """The steps the session's command ran (None: unknown, take every file)."""
    try:
        command = json.loads((results / "session.json").read_text())["command"]
    except (OSError, KeyError, json.JSONDecodeError):
        return None
    _, found, rest = command.partition('STEPS="')
    return set(rest.split('"', 1)[0].split()) if found else None


def load(results: Path) -> dict[str, dict[str, Any]]:
    """The session's result files; files of steps the session did not run (left over from
    an earlier session) are left out, so no ratio mixes two sessions."""
    found = {}
    steps = session_steps(results)
    for path in sorted(results.glob("*.json")):
        if path.stem == "session":
            continue
        if steps is not None and STEP_OF.get(path.stem, path.stem) not in steps:
            print(f"leave out {path.name}: its step did not run in this session", file=sys.stderr)
            continue
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"skip {path}: {exc}", file=sys.stderr)
    return found


def fmt(x: float | None, nd: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def span(s: dict[str, Any] | None, nd: int = 0) -> str:
    """'median (min-max)' of a harness summary; one run shows just the value."""
    if not s or s.get("median") is None:
        return "-"
    if len(s.get("runs", [])) <= 1:
        return fmt(s["median"], nd)
    return f"{fmt(s['median'], nd)} ({fmt(s['min'], nd)}-{fmt(s['max'], nd)})"


def summary(vals: list[float]) -> dict[str, Any] | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": vals}


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if not a or not b or not a.get("median") or not b.get("median"):
        return "-"
    return f"{a['median'] / b['median']:.2f}"


def metric(d: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The harness summary for one headline metric of one result file."""
    if d is None:
        return None
    w = d["workloads"]
    path = {
        "w1": ("w1_bulk", "jobs_per_s"),
        "w1s": ("w1_single", "jobs_per_s"),
        "w2": ("w2_drain", "jobs_per_s"),
        "p50": ("w3_latency", "p50_ms"),
        "p95": ("w3_latency", "p95_ms"),
        "p99": ("w3_latency", "p99_ms"),
        "rate": ("w3_latency", "achieved_rate"),
    }[key]
    return w.get(path[0], {}).get(path[1])


def cpu(d: dict[str, Any] | None) -> dict[str, dict[str, Any] | None]:
    """CPU figures the harness collected, as summaries over the repeats."""
    out: dict[str, dict[str, Any] | None] = {}
    w = (d or {}).get("workloads", {})
    c2 = w.get("w2_drain", {}).get("cpu") or []
    out["w2_worker_ms"] = summary([c["worker_cpu_ms_per_job"] for c in c2])
    out["w2_busy"] = summary([c["machine_busy_pct"] for c in c2])
    runs = w.get("w3_latency", {}).get("runs") or []
    out["w3_busy"] = summary([r.get("machine_busy_pct_while_producing") for r in runs])
    out["w3_producer_ms"] = summary([r.get("producer_cpu_ms_per_job") for r in runs])
    out["w3_worker_ms"] = summary(
        [1e3 * sum(r["worker_cpu_s"]) / r["jobs"] for r in runs if r.get("worker_cpu_s") and r.get("jobs")]
    )
    return out


def prefetch_value(data: dict[str, Any] | None) -> str:
    sets = (data or {}).get("args", {}).get("worker_set") or []
    return next((v.split("=", 1)[1] for v in sets if v.startswith("prefetch=")), "?")


def prefetch_label(res: dict[str, dict[str, Any]]) -> str:
    return f"Fleetlog prefetch={prefetch_value(res.get(PREFETCH))}"


def headline(res: dict[str, dict[str, Any]]) -> list[str]:
    fl, pf, st, idi = res.get(FLEETLOG), res.get(PREFETCH), res.get(STRICT), res.get(IDIOMATIC)
    n = (fl or st or {}).get("args", {}).get("n")
    ns = (fl or st or {}).get("args", {}).get("n_single")
    a = (fl or st or {}).get("args", {})
    rows = [
        ("w1", f"W1 bulk enqueue {fmt(n)} (jobs/s)", 0, True),
        ("w1s", f"W1 one-at-a-time enqueue {fmt(ns)} (jobs/s)", 0, True),
        ("w2", f"W2 drain {fmt(n)} (jobs/s)", 0, False),
        ("p50", f"W3 latency p50 @ {fmt(a.get('rate'))}/s x {fmt(a.get('duration'))} s (ms)", 1, False),
        ("p95", "W3 latency p95 (ms)", 1, False),
        ("p99", "W3 latency p99 (ms)", 1, False),
    ]
    lines = [
        f"| workload | Fleetlog | {prefetch_label(res)} | PgQueuer strict | PgQueuer idiomatic "
        "| **Fleetlog / strict** | **Fleetlog / idiomatic** | **prefetch / strict** "
        "| **prefetch / idiomatic** |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label, nd, enqueue in rows:
        f, s = metric(fl, key), metric(st, key)
        i, p = metric(idi, key), metric(pf, key)
        i_text, p_text = span(i, nd), span(p, nd)
        if enqueue:  # the setups differ only in their workers
            if i is None and s is not None:
                i, i_text = s, "same as strict"
            if p is None and f is not None:
                p, p_text = f, "same as Fleetlog"
        lines.append(
            f"| {label} | {span(f, nd)} | {p_text} | {span(s, nd)} | {i_text} | **{ratio(f, s)}** "
            f"| **{ratio(f, i)}** | **{ratio(p, s)}** | **{ratio(p, i)}** |"
        )
    return lines


def ratio_value(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or not a.get("median") or not b.get("median"):
        return None
    return a["median"] / b["median"]


def http_section(res: dict[str, dict[str, Any]]) -> list[str]:
    """The HTTP path beside the direct path and PgQueuer, with issue 3's two target ratios."""
    ht, fl, st, idi = res.get(HTTP), res.get(FLEETLOG), res.get(STRICT), res.get(IDIOMATIC)
    if ht is None:
        return ["Not run in this session (step `fleetlog-http`)."]
    a = ht.get("args", {})
    drain = ratio_value(metric(ht, "w2"), metric(fl, "w2"))
    p99 = ratio_value(metric(ht, "p99"), metric(st, "p99"))

    def verdict(value: float | None, ok: bool) -> str:
        return "-" if value is None else ("**met**" if ok else "**missed**")

    lines = [
        "| target | value | target | verdict |",
        "|---|---|---|---|",
        f"| W2 drain: HTTP / direct | {fmt(drain, 2) if drain is not None else '-'} | >= {DRAIN_TARGET} "
        f"| {verdict(drain, drain is not None and drain >= DRAIN_TARGET)} |",
        f"| W3 p99: HTTP / PgQueuer strict | {fmt(p99, 2) if p99 is not None else '-'} | <= {P99_TARGET} "
        f"| {verdict(p99, p99 is not None and p99 <= P99_TARGET)} |",
        "",
        "| workload | Fleetlog direct | Fleetlog HTTP | PgQueuer strict | PgQueuer idiomatic "
        "| **HTTP / direct** | **HTTP / strict** | **HTTP / idiomatic** |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [
        ("w1", f"W1 bulk enqueue {fmt(a.get('n'))} (jobs/s)", 0, True),
        ("w1s", f"W1 one-at-a-time enqueue {fmt(a.get('n_single'))} (jobs/s)", 0, True),
        ("w2", f"W2 drain {fmt(a.get('n'))} (jobs/s)", 0, False),
        ("p50", f"W3 latency p50 @ {fmt(a.get('rate'))}/s x {fmt(a.get('duration'))} s (ms)", 1, False),
        ("p95", "W3 latency p95 (ms)", 1, False),
        ("p99", "W3 latency p99 (ms)", 1, False),
        ("rate", "W3 achieved rate (jobs/s)", 1, False),
    ]
    for key, label, nd, enqueue in rows:
        h, f, s_, i = metric(ht, key), metric(fl, key), metric(st, key), metric(idi, key)
        i_text = span(i, nd)
        if enqueue and i is None and s_ is not None:
            i, i_text = s_, "same as strict"
        lines.append(
            f"| {label} | {span(f, nd)} | {span(h, nd)} | {span(s_, nd)} | {i_text} | **{ratio(h, f)}** "
            f"| **{ratio(h, s_)}** | **{ratio(h, i)}** |"
        )
    achieved, offered = metric(ht, "rate"), a.get("rate")
    if achieved and offered and achieved["median"] < 0.95 * offered:
        lines += [
            "",
            f"> **Not like for like:** the HTTP W3 producer reached {fmt(achieved['median'], 1)} of the "
            f"{fmt(offered)} jobs/s offered ({a.get('producers')} open-loop lanes, one request in flight "
            "each: see the submit call time below), so its latencies are at a lower load than the others'.",
        ]
    lines += [
        "",
        *variants_table(res, ht),
        *http_cpu(ht),
        "",
        f"Setup: {ht.get('setup', '-')}. W1 bulk: {w_api(ht, 'w1_bulk')}; "
        f"W1 single: {w_api(ht, 'w1_single')}. W3 producer lanes: {w3_lanes(ht)} each, "
        "POST /v1/jobs (open loop as for the peers).",
    ]
    return lines


def w3_lanes(ht: dict[str, Any]) -> str:
    """The W3 producer's HTTP client (runs before ``--http-producer`` used httpx)."""
    if ht.get("args", {}).get("http_producer", "httpx") == "raw":
        return "a RawLane (bench/http_lane.py: a minimal HTTP/1.1 load generator on a kept-alive connection)"
    return "an httpx.AsyncClient"


def variants_table(res: dict[str, dict[str, Any]], ht: dict[str, Any]) -> list[str]:
    """The HTTP path's variants in the same session: the default (one process, hand-over
    on), hand-over off (step ``fleetlog-http-queue``, ``serve --no-handoff``) and several
    server processes (step ``fleetlog-http-procs``, ``serve --processes N``), beside
    PgQueuer strict."""
    variants = [
        (k, label)
        for k, label in (
            (HTTP_QUEUE, "hand-over off"),
            (HTTP_PREFETCH, http_prefetch_label(res)),
            (HTTP_PROCS, procs_label(res)),
        )
        if k in res
    ]
    if not variants:
        return []
    st = res.get(STRICT)
    head = " | ".join(["HTTP default", *(label for _, label in variants)])
    ratios = " | ".join(f"**{label} / default**" for _, label in variants)
    lines = [
        "The HTTP path's variants, same session: the default (one `fleetlog serve` process, hand-over on), "
        "hand-over off (step `fleetlog-http-queue`: `serve --no-handoff`, every job through the queue and a "
        "woken long-poll's claim), workers holding leases beyond their handler threads (step "
        "`fleetlog-http-prefetch`: `WorkerConfig.prefetch`, claim streams of up to concurrency + prefetch "
        "jobs, no start recorded) and several server processes on one socket (step `fleetlog-http-procs`: "
        "`serve --processes N`, hand-over on).",
        "",
        f"| workload | {head} | {ratios} | **each / PgQueuer strict** |",
        "|---" * (2 + 2 * len(variants) + 1) + "|",
    ]
    for key, label, nd in (
        ("w2", "W2 drain (jobs/s)", 0),
        ("p50", "W3 latency p50 (ms)", 1),
        ("p95", "W3 latency p95 (ms)", 1),
        ("p99", "W3 latency p99 (ms)", 1),
        ("rate", "W3 achieved rate (jobs/s)", 1),
    ):
        base = metric(ht, key)
        cells = [span(base, nd), *(span(metric(res[k], key), nd) for k, _ in variants)]
        rel = [f"**{ratio(metric(res[k], key), base)}**" for k, _ in variants]
        vs_strict = " / ".join(
            ratio(metric(d, key), metric(st, key)) for d in [ht, *(res[k] for k, _ in variants)]
        )
        lines.append(f"| {label} | {' | '.join(cells)} | {' | '.join(rel)} | {vs_strict} |")
    return [*lines, ""]


def http_prefetch_label(res: dict[str, dict[str, Any]]) -> str:
    return f"prefetch={prefetch_value(res.get(HTTP_PREFETCH))}"


def procs_label(res: dict[str, dict[str, Any]]) -> str:
    command = res.get(HTTP_PROCS, {}).get("args", {}).get("serve_command") or ""
    words = command.split()
    n = words[words.index("--processes") + 1] if "--processes" in words[:-1] else "N"
    return f"{n} server processes"


def http_cpu(ht: dict[str, Any]) -> list[str]:
    """Where the HTTP path's CPU goes: server process(es) beside the workers."""
    w = ht.get("workloads", {})
    c2 = w.get("w2_drain", {}).get("cpu") or []
    v2 = w.get("w2_drain", {}).get("verify") or []
    runs = w.get("w3_latency", {}).get("runs") or []
    w2_server = summary([v.get("server_cpu_ms_per_job") for v in v2 if isinstance(v, dict)])
    w2_worker = summary([c["worker_cpu_ms_per_job"] for c in c2])
    w3_server = summary(
        [
            1e3 * r["workers"]["server_cpu_s"] / r["jobs"]
            for r in runs
            if (r.get("workers") or {}).get("server_cpu_s")
        ]
    )
    w3_call = summary([r.get("enqueue_call_ms_p50") for r in runs])
    w3_call99 = summary([r.get("enqueue_call_ms_p99") for r in runs])
    return [
        "| HTTP path | W2 server CPU, ms/job | W2 worker CPU, ms/job | W3 server CPU, ms/job "
        "| W3 producer CPU, ms/job | W3 submit call p50 / p99, ms |",
        "|---|---|---|---|---|---|",
        f"| Fleetlog HTTP | {span(w2_server, 2)} | {span(w2_worker, 2)} | {span(w3_server, 2)} "
        f"| {span(cpu(ht)['w3_producer_ms'], 2)} | {span(w3_call, 1)} / {span(w3_call99, 1)} |",
    ]


def cpu_table(res: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| setup | W2 worker CPU, ms/job | W2 machine busy % | W3 worker CPU, ms/job "
        "| W3 producer CPU, ms/job | W3 machine busy % | W3 achieved rate, jobs/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (
        (FLEETLOG, "Fleetlog"),
        (PREFETCH, prefetch_label(res)),
        (HTTP, "Fleetlog HTTP (workers and producer only; server below)"),
        (STRICT, "PgQueuer strict"),
        (IDIOMATIC, "PgQueuer idiomatic"),
    ):
        d = res.get(key)
        if d is None:
            continue
        c = cpu(d)
        lines.append(
            f"| {label} | {span(c['w2_worker_ms'], 2)} | {span(c['w2_busy'])} | {span(c['w3_worker_ms'], 2)} "
            f"| {span(c['w3_producer_ms'], 2)} | {span(c['w3_busy'])} | {span(metric(d, 'rate'), 1)} |"
        )
    return lines


def fleetlog_internals(res: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| setup | workload, run | jobs/claim | jobs/room request | empty claims | jobs/completion batch "
        "| lease grants | events/job | verified |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (
        (FLEETLOG, "Fleetlog"),
        (PREFETCH, prefetch_label(res)),
        (HTTP, "Fleetlog HTTP"),
        (HTTP_QUEUE, "Fleetlog HTTP, hand-over off"),
        (HTTP_PREFETCH, "Fleetlog HTTP, prefetch"),
        (HTTP_PROCS, "Fleetlog HTTP, several server processes"),
    ):
        if key in res:
            lines += _internals_rows(label, res[key]["workloads"])
    return lines if len(lines) > 2 else []


def _internals_rows(label: str, w: dict[str, Any]) -> list[str]:
    lines = []
    for r, v in enumerate(w.get("w2_drain", {}).get("verify") or []):
        s = v.get("workers") or {}
        lines.append(
            f"| {label} | W2 r{r} | {s.get('jobs_per_claim', '-')} | {_per_room(s)} "
            f"| {s.get('empty_claims', '-')} "
            f"| {s.get('jobs_per_complete', '-')} | {v.get('lease_grants', '-')} "
            f"| {v.get('job_events_per_job', '-')} | {'OK' if v.get('ok') else 'FAILED ' + json.dumps(v)} |"
        )
    for r, run in enumerate(w.get("w3_latency", {}).get("runs") or []):
        s = run.get("workers") or {}
        lines.append(
            f"| {label} | W3 r{r} | {s.get('jobs_per_claim', '-')} | {_per_room(s)} "
            f"| {s.get('empty_claims', '-')} "
            f"| {s.get('jobs_per_complete', '-')} | - | - "
            f"| {run['latencies_recorded']}/{run['jobs']} recorded |"
        )
    return lines


def _per_room(s: dict[str, Any]) -> Any:
    """Jobs per ``POST /v1/claim/room`` (refilled HTTP streams; older results: computed)."""
    if "jobs_per_room_call" in s:
        return s["jobs_per_room_call"]
    calls = s.get("room_calls")
    return round(s["claimed"] / calls, 2) if calls and s.get("claimed") else "-"


def analytics_section(an: dict[str, Any] | None, fl: dict[str, Any] | None) -> list[str]:
    """The ClickHouse consumer (step `analytics`): issue 4's two targets, and the drain beside it."""
    if an is None:
        return ["Not run in this session (step `analytics`)."]
    s = an.get("summary")
    a = an.get("args", {})
    lines: list[str] = []
    if an.get("failed"):
        lines += [f"> **The run failed:** {an['failed']}", ""]
    if s is None:
        return [*lines, "No completed repeat."]
    events = (s.get("events_in_log") or {}).get("median") or 0
    smoke = events < ANALYTICS_MIN_EVENTS or a.get("repeats", 0) < FULL_REPEATS
    if smoke:
        lines += [
            f"> **Smoke run, not a measurement:** {fmt(events)} events in the log (the issue asks for "
            f">= {ANALYTICS_MIN_EVENTS:,}) and {a.get('repeats')} repeat(s); start-up and fixed costs "
            "dominate small runs.",
            "",
        ]
    verified = s.get("verified", {})
    if not all(verified.values()):
        lines += [f"> **Verification FAILED:** {json.dumps(verified)}: the figures below do not count.", ""]

    def verdict(ok: bool | None) -> str:
        if ok is None:
            return "-"
        if not all(verified.values()):
            return "**not verified**"
        text = "**met**" if ok else "**missed**"
        return f"{text} (smoke)" if smoke else text

    rebuild, p99 = s.get("rebuild_events_per_s"), s.get("lag_p99_s")
    v = s.get("verdicts", {})
    config = ", ".join(f"{k}={val}" for k, val in (an.get("consumer_config") or {}).items())
    lines += [
        "| target | value | target | verdict |",
        "|---|---|---|---|",
        f"| Rebuild on the embedded engine, events/s (whole `rebuild()`: fresh database, replay, swap) "
        f"| {span(rebuild)} | >= {REBUILD_TARGET:,} | {verdict(v.get('rebuild_events_per_s'))} |",
        f"| Live lag p99 during the drain, s | {span(p99, 3)} | < {LAG_P99_TARGET:g} "
        f"| {verdict(v.get('live_lag_p99_s'))} |",
        "",
        "| figure | value |",
        "|---|---|",
        f"| events in the log (rebuilt) | {span(s.get('events_in_log'))} |",
        f"| rebuild: seconds, whole call | {span(s.get('rebuild_seconds'), 2)} |",
        f"| rebuild: replay alone (`timed_replay`), events/s / seconds "
        f"| {span(s.get('rebuild_replay_events_per_s'))} / {span(s.get('rebuild_replay_seconds'), 2)} |",
        f"| rebuild: fresh database / swap, seconds | {span(s.get('rebuild_fresh_seconds'), 2)} / "
        f"{span(s.get('rebuild_swap_seconds'), 2)} |",
        f"| live lag p50 / p95 / p99 / max, s | {span(s.get('lag_p50_s'), 3)} / "
        f"{span(s.get('lag_p95_s'), 3)} / {span(p99, 3)} / {span(s.get('lag_max_s'), 3)} |",
        f"| events in the lag window | {span(s.get('events_in_lag_window'))} |",
        f"| consumer batches during the drain / mean events per batch | {span(s.get('batches'))} / "
        f"{span(s.get('mean_batch_events'), 1)} |",
        f"| consumer caught up after the drain's end, s | {span(s.get('catchup_after_drain_end_s'), 2)} |",
        f"| consumer thread CPU, % of one core / ms per 1,000 events "
        f"| {span(s.get('consumer_thread_cpu_pct_of_one_core'), 1)} / "
        f"{span(s.get('consumer_cpu_ms_per_1000_events'), 1)} |",
        f"| bench process CPU (consumer + chDB threads), % of the machine "
        f"| {span(s.get('bench_process_cpu_pct_of_machine'), 1)} |",
        f"| where the live consumer's batch time went | {time_shares(an, live=True)} |",
        f"| where the rebuild's time went | {time_shares(an, live=False)} |",
        f"| verified (drain from the log; live projection and every rebuild with `analytics verify`) "
        f"| {', '.join(f'{k} {chr(10003) if ok else chr(10007)}' for k, ok in verified.items())} |",
        "",
        *analytics_drains(an, fl, s),
        "",
        f"Lag: {an.get('lag_definition', '-')}; window: {an.get('lag_window', '-')}. Consumer: "
        f"`ConsumerConfig` defaults ({config}), {an.get('engine', 'embedded chDB')}. "
        f"Drain setup: {an.get('setup', '-')}.",
        "",
        f"Command: `{an.get('command', '-')}`; the step ran `{an.get('argv', '-')}`.",
    ]
    return lines


def time_shares(an: dict[str, Any], *, live: bool) -> str:
    """Shares of the measured wall time by phase, summed over the repeats."""
    totals: dict[str, float] = {}
    for run in an.get("repeats", []):
        parts = [run["drain"]["consumer"]["timings"]] if live else [b["timings"] for b in run["rebuilds"]]
        for timings in parts:
            for key, val in timings.items():
                totals[key] = totals.get(key, 0.0) + val["seconds"]
    if live:
        whole = totals.get("batch", 0.0)
        named = {
            "reading the log": totals.get("read_log", 0.0),
            "fold (priming reads included)": totals.get("fold_with_priming", 0.0),
            "of which priming reads": totals.get("prime_read", 0.0),
            "ClickHouse INSERTs": totals.get("insert", 0.0),
        }
        rest = "positions, pressure"
    else:
        whole = sum(b["seconds"] for run in an.get("repeats", []) for b in run["rebuilds"])
        named = {
            "reading the log": totals.get("read_log", 0.0),
            "priming reads": totals.get("prime_read", 0.0),
            "ClickHouse INSERTs": totals.get("insert", 0.0),
            "fresh database": totals.get("fresh_database", 0.0),
            "swap": totals.get("swap", 0.0),
        }
        rest = "the fold, row counts"
    if whole <= 0:
        return "-"
    counted = sum(v for k, v in named.items() if not k.startswith("of which"))
    parts = [f"{k} {100 * v / whole:.0f}%" for k, v in named.items() if v > 0]
    parts.append(f"{rest} {100 * max(0.0, whole - counted) / whole:.0f}%")
    return ", ".join(parts) + f" (of {whole:.1f} s)"


def analytics_drains(an: dict[str, Any], fl: dict[str, Any] | None, s: dict[str, Any]) -> list[str]:
    """The drain with the consumer beside the same drain without it (if run) and the fleetlog W2."""
    n = an.get("args", {}).get("n")
    with_c = s.get("drain_jobs_per_s")
    lines = [
        "| drain | jobs | jobs/s | with the consumer / this |",
        "|---|---|---|---|",
        f"| W2 drain with the consumer following (this step) | {fmt(n)} | {span(with_c)} | 1.00 |",
    ]
    base = s.get("baseline_drain_jobs_per_s")
    if base and base.get("median"):
        lines.append(
            f"| the same drain without the consumer (`--baseline`, same step) | {fmt(n)} | {span(base)} "
            f"| **{ratio(with_c, base)}** |"
        )
    w2 = metric(fl, "w2")
    if w2:
        fn = (fl or {}).get("args", {}).get("n")
        same = fn == n and (fl or {}).get("args", {}).get("worker_set", []) == an.get("args", {}).get(
            "worker_set", []
        )
        note = "" if same else " (other N or worker settings: not like for like)"
        lines.append(
            f"| W2 drain of the `fleetlog` step, no consumer{note} | {fmt(fn)} | {span(w2)} "
            f"| **{ratio(with_c, w2)}** |"
        )
    if len(lines) == 3:
        lines.append(
            "| (no drain without the consumer in this session: ANALYTICS_BASELINE=1 adds one) | | | |"
        )
    return lines


def pgbench_line(d: dict[str, Any] | None) -> str:
    if d is None:
        return "pgbench: not run in this session."
    parts = [f"{v['clients']} client(s) {span(v['tps'])}" for v in d["workloads"].values()]
    return f"pgbench 1-row INSERT commits/s ({d.get('setup', '')}): " + "; ".join(parts) + "."


def machine(res: dict[str, dict[str, Any]], session: dict[str, Any]) -> list[str]:
    m = next((d["machine"] for d in res.values() if "machine" in d), {})
    mem = m.get("mem_total_kb")
    out = [
        f"- CPU: {session.get('cpu_model', '?')}, {m.get('cpus', session.get('cpus'))} cores; "
        f"memory {fmt(mem / 2**20, 1) if mem else '?'} GiB; {m.get('platform', '')}",
        f"- PostgreSQL: {m.get('postgres', '?').split(' on ')[0]}; synchronous_commit="
        f"{m.get('synchronous_commit')}, fsync={m.get('fsync')}, shared_buffers={m.get('shared_buffers')}, "
        f"max_connections={m.get('max_connections')}",
        f"- Python {m.get('python')}; versions: "
        + ", ".join(sorted({f"{d['peer']} {d.get('version')}" for k, d in res.items() if k != PGBENCH})),
    ]
    if session:
        out.append(
            f"- Session {session.get('started', '?')} to {session.get('finished', '?')}; load average "
            f"at start {fmt_load(session.get('load_avg_at_start'))}, "
            f"at end {fmt_load(session.get('load_avg_at_end'))}"
            f"; Fleetlog commit {session.get('fleetlog_commit') or '?'}"
            + (" with uncommitted changes" if session.get("fleetlog_tree_dirty") else "")
        )
    return out


def fmt_load(v: Any) -> str:
    return "/".join(f"{x:.2f}" for x in v) if v else "?"


def detail_rows(res: dict[str, dict[str, Any]]) -> list[str]:
    sys.path.insert(0, str(PEERS))
    try:
        import make_report  # the peers' report: same row format as their RESULTS.md
    except ImportError as exc:
        return [f"(detailed rows unavailable: {exc})"]
    hdr = ["peer", "version", "workload", "setup", "median", "min", "max", "notes"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join(["---"] * len(hdr)) + "|"]
    known = [PGBENCH, STRICT, IDIOMATIC, FLEETLOG, PREFETCH, HTTP, HTTP_QUEUE, HTTP_PREFETCH, HTTP_PROCS]
    for key in [*known, *sorted(set(res) - set(known))]:
        if key in res:
            for row in make_report.rows_for(res[key], key + ".json"):
                lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    return lines


def started(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def warnings(res: dict[str, dict[str, Any]], session: dict[str, Any]) -> list[str]:
    out = []
    t0 = started(session.get("started"))
    earlier = [k for k, d in res.items() if t0 and (t := started(d.get("started"))) and t < t0]
    if earlier:
        out.append(
            f"> **Warning:** {', '.join(earlier)} ran before this session started ({session['started']}): "
            "these numbers come from different sessions and their ratios are not like for like."
        )
    args = [d.get("args", {}) for k, d in res.items() if k != PGBENCH]
    if any(a.get("n", FULL_N) < FULL_N or a.get("repeats", FULL_REPEATS) < FULL_REPEATS for a in args):
        out.append(
            "> **Small-N development run** (N < 20,000 or fewer than 3 repeats): a smoke test of the "
            "tooling, not a measurement. Short drains are dominated by start-up and the last poll."
        )
    keys = {
        json.dumps({k: a.get(k) for k in ("n", "procs", "concurrency", "repeats", "rate", "duration")})
        for a in args
    }
    if len(keys) > 1:
        out.append("> **Warning:** the result files differ in N/PROCS/CONC/REPEATS/W3 settings.")
    for key in (FLEETLOG, PREFETCH, HTTP, HTTP_QUEUE, HTTP_PREFETCH, HTTP_PROCS, STRICT, IDIOMATIC):
        for r, v in enumerate(res.get(key, {}).get("workloads", {}).get("w2_drain", {}).get("verify") or []):
            if isinstance(v, dict) and not v.get("ok"):
                out.append(f"> **Verification FAILED**: {key} W2 run {r}: {json.dumps(v)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    a = ap.parse_args()
    results = Path(a.results)
    res = load(results)
    if FLEETLOG not in res and ANALYTICS not in res:
        raise SystemExit(f"no fleetlog.json (nor analytics.json) in {results}")
    sources = ", ".join(f"`{k}.json`" for k in res)
    versions = dict(res)  # every file's machine and version, for the Machine section
    an = res.pop(ANALYTICS, None)
    session_path = results / "session.json"
    session = json.loads(session_path.read_text()) if session_path.exists() else {}
    fl, st = res.get(FLEETLOG, {}), res.get(STRICT, {})
    text = [
        "# Fleetlog against PgQueuer: benchmark results",
        "",
        f"_Generated by `bench/report.py` from {sources} in `{results}`._",
        "",
        f"Command: `{session.get('command', 'bash bench/run.sh')}` (from the project root; `make bench` "
        "runs `bash bench/run.sh`). Same session, same machine, one at a time: pgbench, PgQueuer strict, "
        "PgQueuer idiomatic, Fleetlog with the worker's defaults, Fleetlog with worker prefetch, "
        "Fleetlog over HTTP, then the ClickHouse consumer (whichever of these the command's STEPS ran). "
        "Harness and workloads: `../shared/bench-peers` "
        "(README.md there); Fleetlog's adapter: `bench/bench_fleetlog.py`.",
        "",
        *warnings(res, session),
        "",
        "## Headline: medians (min-max over the repeats) and ratios",
        "",
        "Ratio = Fleetlog median / PgQueuer median. For jobs/s above 1 means Fleetlog is faster; "
        "for latency above 1 means Fleetlog is slower. PgQueuer strict is the peer scripts' default "
        "setup (the issue's reference); idiomatic is PgQueuer's own defaults.",
        "",
        *headline(res),
        "",
        "## CPU (as the harness measured it)",
        "",
        "Worker CPU = user+sys of the worker processes after their setup (W2: per drained job; W3: per "
        "job over the whole W3 window, idle polling included). Machine busy = all cores, /proc/stat, "
        "including PostgreSQL and the poller. Producer CPU = the W3 producer process per enqueued job.",
        "",
        *cpu_table(res),
        "",
        pgbench_line(res.get(PGBENCH)),
        "",
        "## HTTP path beside the direct path and PgQueuer (issue 3)",
        "",
        "The same workloads through `fleetlog serve` (step `fleetlog-http`): producers over HTTP, workers "
        "over HTTP (`HttpPort`, as `fleetlog worker --url` runs them), verified from the event log like the "
        "direct W2. Ratios: HTTP median / other median. Server CPU: the `fleetlog serve` process(es) from "
        "/proc (W2: from the end of the pre-fill to the verification; W3: from the first producer lane "
        "to the server's stop, so the final drain poll is included).",
        "",
        *http_section(res),
        "",
        "## ClickHouse consumer (issue 4)",
        "",
        "Step `analytics` (`bench/bench_analytics.py`): the analytics consumer (`AnalyticsConsumer` over "
        "`ClickHouseAnalytics`, embedded chDB) on a thread of the bench process follows the event log "
        "from before the bulk submit, through a W2 drain run like the `fleetlog` step's (same workers), "
        "to the drain's end; then `rebuild()` replays the whole log into a fresh database and swaps it "
        "in. Medians (min-max) over the repeats.",
        "",
        *analytics_section(an, res.get(FLEETLOG)),
        "",
        "## Setups",
        "",
        f"- Fleetlog: {fl.get('setup', '-')}. W1 bulk: {w_api(fl, 'w1_bulk')}; W1 single: "
        f"{w_api(fl, 'w1_single')}.",
        f"- PgQueuer strict: {st.get('setup', '-')}. W1 bulk: {w_api(st, 'w1_bulk')}; W1 single: "
        f"{w_api(st, 'w1_single')}.",
        f"- {prefetch_label(res)}: {res.get(PREFETCH, {}).get('setup', '-')} (W2 and W3 only; its "
        "enqueue is the default run's). A prefetching worker holds leases beyond its handler threads, "
        "so a claim cannot record which jobs start at once: no start event (3 events per job, not 4).",
        f"- PgQueuer idiomatic: {res.get(IDIOMATIC, {}).get('setup', '-')} (W2 and W3 only; its enqueue "
        "is the strict run's).",
        "- Differences that stay: PgQueuer's bulk enqueue is one call for all N jobs, Fleetlog's "
        "`submit_many` takes at most 1,000 per call (one transaction each). Fleetlog's API is "
        "synchronous: the W3 producer lanes call it through a thread each, and that hop is inside "
        "the measured latency. Fleetlog keeps a full event history per job (see below); PgQueuer "
        "deletes finished jobs and logs them.",
        "",
        "## Fleetlog's own counters",
        "",
        "From the worker processes (DirectPort call counters, Worker stats) and the W2 verification "
        "over the event log (every job exactly one JobSucceeded event; nothing queued or leased).",
        "",
        *fleetlog_internals(res),
        "",
        "## Machine",
        "",
        *machine(versions, session),
        "",
        "## All rows (the peers' table format)",
        "",
        *detail_rows(res),
        "",
        "## Caveats",
        "",
        "- The machine is noisy (the peers saw +/-30% between passes): compare only within one "
        "session, with 3+ repeats; no number here is an assertion anywhere.",
        "- Every process (workers, producers, PostgreSQL, the poller) shares the same cores.",
        "",
    ]
    Path(a.out).write_text("\n".join(text))
    print(f"wrote {a.out}")


def w_api(d: dict[str, Any], key: str) -> str:
    return d.get("workloads", {}).get(key, {}).get("api", "-")


if __name__ == "__main__":
    main()
