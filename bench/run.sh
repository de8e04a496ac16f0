#!/usr/bin/env bash
# Fleetlog against the peer job queues, in ONE session on this machine (`make bench`):
#   pgbench commit ceiling (short) -> PgQueuer strict -> PgQueuer idiomatic -> Fleetlog (direct)
#   -> Fleetlog with worker prefetch (W2, W3) -> Fleetlog over HTTP (`fleetlog serve` + HTTP workers)
#   -> the ClickHouse analytics consumer (live lag during a drain, rebuild throughput; issue 4)
#   -> bench/RESULTS.md (medians, min/max, Fleetlog/PgQueuer ratios, CPU, machine, command).
#
#   bash bench/run.sh                                   # full run: N=20000 PROCS=2 CONC=4 REPEATS=3 (~10 min,
#                                                       #   plus ~10 min for the analytics step)
#   QUICK=1 bash bench/run.sh                           # smoke: N=2000 REPEATS=1 W3 5 s (~2 min),
#                                                       #   written to bench/results/tmp/quick/
#   N=20000 PROCS=2 CONC=4 REPEATS=3 bash bench/run.sh  # the defaults, spelled out
#   STEPS="fleetlog report" bash bench/run.sh           # a subset (steps: pgbench pgqueuer
#                                                       #   pgqueuer-idiomatic fleetlog
#                                                       #   fleetlog-prefetch fleetlog-http fleetlog-http-queue
#                                                       #   fleetlog-http-prefetch fleetlog-http-procs
#                                                       #   analytics report)
#   STEPS="analytics report" bash bench/run.sh          # the analytics step alone: ANALYTICS_N=50000 jobs
#                                                       #   (>= 200,000 events), REPEATS repeats
#
# Other knobs: DSN (server + the peers' database, default postgresql://postgres@127.0.0.1:5432/bench),
# NS (W1 one-at-a-time jobs, 2000), RATE (W3 jobs/s, 200), DURATION (W3 seconds, 20), PRODUCERS (4),
# PGBENCH_SECONDS (5), PREFETCH (16: WorkerConfig.prefetch of the fleetlog-prefetch and
# fleetlog-http-prefetch steps),
# FLEETLOG_ARGS (extra bench_fleetlog.py arguments for both Fleetlog steps, e.g. "--worker-set
# completion_flush_ms=5"), HTTP_SERVERS (1: `fleetlog serve` processes of the fleetlog-http step),
# SERVER_POOL (their --pool-size; empty: serve's default), OUT_DIR / REPORT (where JSON and the report go), PYTHON (to create the
# peers' venv), BENCH_PEERS_DIR (default ../shared/bench-peers).
# The analytics step: ANALYTICS_N (jobs submitted then drained, 50000; QUICK 3000), ANALYTICS_REPEATS
# (REPEATS), ANALYTICS_MIN_EVENTS (the log must reach it, 200000; QUICK 0), ANALYTICS_BASELINE (1: also
# the same drain without the consumer, every repeat), ANALYTICS_ARGS (extra bench_analytics.py arguments,
# e.g. "--rebuilds 3 --profile-rebuild"; FLEETLOG_ARGS is not passed: repeat a --worker-set here).
#
# Run nothing else meanwhile: every process (workers, producers, PostgreSQL) shares the cores.
# PostgreSQL's configuration is left as it is; only the `bench` database is created if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=$(cd "${BENCH_PEERS_DIR:-$ROOT/../shared/bench-peers}" && pwd)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  N=${N:-2000}; REPEATS=${REPEATS:-1}; DURATION=${DURATION:-5}; PGBENCH_SECONDS=${PGBENCH_SECONDS:-2}
  ANALYTICS_N=${ANALYTICS_N:-3000}; ANALYTICS_MIN_EVENTS=${ANALYTICS_MIN_EVENTS:-0}
  OUT_DIR=${OUT_DIR:-bench/results/tmp/quick}
  REPORT=${REPORT:-$OUT_DIR/RESULTS.md}
else
  N=${N:-20000}; REPEATS=${REPEATS:-3}; DURATION=${DURATION:-20}; PGBENCH_SECONDS=${PGBENCH_SECONDS:-5}
  ANALYTICS_N=${ANALYTICS_N:-50000}; ANALYTICS_MIN_EVENTS=${ANALYTICS_MIN_EVENTS:-200000}
  OUT_DIR=${OUT_DIR:-bench/results}
  REPORT=${REPORT:-bench/RESULTS.md}
fi
DSN=${DSN:-postgresql://postgres@127.0.0.1:5432/bench}
NS=${NS:-2000}
PROCS=${PROCS:-2}
CONC=${CONC:-4}
RATE=${RATE:-200}
PRODUCERS=${PRODUCERS:-4}
FLEETLOG_ARGS=${FLEETLOG_ARGS:-}
PREFETCH=${PREFETCH:-16}
HTTP_SERVERS=${HTTP_SERVERS:-1}
SERVER_PROCESSES=${SERVER_PROCESSES:-2}
SERVER_POOL=${SERVER_POOL:-}
ANALYTICS_REPEATS=${ANALYTICS_REPEATS:-$REPEATS}
ANALYTICS_BASELINE=${ANALYTICS_BASELINE:-0}
ANALYTICS_ARGS=${ANALYTICS_ARGS:-}
STEPS=${STEPS:-"pgbench pgqueuer pgqueuer-idiomatic fleetlog fleetlog-prefetch fleetlog-http fleetlog-http-queue fleetlog-http-procs analytics report"}
PYTHON=${PYTHON:-python3}
FLEETLOG_PY=$ROOT/.venv/bin/python
FLEETLOG_BIN=$ROOT/.venv/bin/fleetlog
PEERS_VENV=$ROOT/bench/.peers-venv
PEERS_PY=$PEERS_VENV/bin/python
export PYTHONDONTWRITEBYTECODE=1  # the peers' directory is read-only

mkdir -p "$OUT_DIR"
LOG=$OUT_DIR/run.log
[ "$STEPS" = report ] || : >"$LOG"  # a report-only run appends to the session's log
exec > >(tee -a "$LOG") 2>&1

common=(--dsn "$DSN" --n "$N" --n-single "$NS" --procs "$PROCS" --concurrency "$CONC" --repeats "$REPEATS"
        --rate "$RATE" --duration "$DURATION" --producers "$PRODUCERS")
COMMAND="QUICK=$QUICK N=$N NS=$NS PROCS=$PROCS CONC=$CONC REPEATS=$REPEATS RATE=$RATE DURATION=$DURATION"
COMMAND+=" PRODUCERS=$PRODUCERS PGBENCH_SECONDS=$PGBENCH_SECONDS PREFETCH=$PREFETCH HTTP_SERVERS=$HTTP_SERVERS SERVER_PROCESSES=$SERVER_PROCESSES"
[ -n "$SERVER_POOL" ] && COMMAND+=" SERVER_POOL=$SERVER_POOL"
COMMAND+=" STEPS=\"$STEPS\""
[ -n "$FLEETLOG_ARGS" ] && COMMAND+=" FLEETLOG_ARGS=\"$FLEETLOG_ARGS\""
case " $STEPS " in
  *" analytics "*)
    COMMAND+=" ANALYTICS_N=$ANALYTICS_N ANALYTICS_REPEATS=$ANALYTICS_REPEATS"
    COMMAND+=" ANALYTICS_MIN_EVENTS=$ANALYTICS_MIN_EVENTS ANALYTICS_BASELINE=$ANALYTICS_BASELINE"
    [ -n "$ANALYTICS_ARGS" ] && COMMAND+=" ANALYTICS_ARGS=\"$ANALYTICS_ARGS\"" ;;
esac
COMMAND+=" bash bench/run.sh"
echo "=== $COMMAND"
echo "=== results: $OUT_DIR  report: $REPORT  peers: $PEERS"

session() {  # session.json: what ran, where, when (read by report.py)
  "$FLEETLOG_PY" - "$OUT_DIR/session.json" "$1" "$COMMAND" "$ROOT" <<'EOF'
import json, os, platform, subprocess, sys, time
from pathlib import Path
path, what, command, root = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = json.loads(path.read_text()) if path.exists() and what != "start" else {}
now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
load = os.getloadavg()
if what == "start":
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    git = lambda *a: subprocess.run(["git", "-C", root, *a], capture_output=True, text=True)
    commit = git("rev-parse", "--short", "HEAD").stdout.strip()
    # Changes to the code measured; the session's own outputs (tracked or not) do not count.
    dirty = bool(git("status", "--porcelain", "--", ".", ":(exclude)bench/results",
                     ":(exclude)bench/RESULTS.md").stdout.strip())
    data = {"command": command, "started": now, "load_avg_at_start": load, "cpu_model": cpu,
            "cpus": os.cpu_count(), "kernel": platform.release(), "host": platform.node(),
            "fleetlog_commit": commit, "fleetlog_tree_dirty": dirty}
else:
    data.update({"finished": now, "load_avg_at_end": load})
path.write_text(json.dumps(data, indent=2))
EOF
}

setup() {
  # (a) PostgreSQL reachable and the peers' `bench` database present (nothing else touched).
  command -v pgbench >/dev/null || { echo "pgbench not found: install postgresql-client-15"; exit 1; }
  local admin=${DSN%/*}/postgres db=${DSN##*/}
  db=${db%%\?*}
  if ! psql "$admin" -Atqc 'select 1' >/dev/null; then
    echo "PostgreSQL is not reachable at ${DSN%/*}: start it (pg_ctlcluster 15 main start);"
    echo "a fresh machine: see $PEERS/README.md (setup-postgres.sh)"; exit 1
  fi
  if [ "$(psql "$admin" -Atqc "select 1 from pg_database where datname = '$db'")" != 1 ]; then
    echo "creating database $db"
    psql "$admin" -qc "CREATE DATABASE \"$db\""
  fi
  psql "$admin" -Atqc "select 'PostgreSQL: ' || version() || '; max_connections=' ||
      current_setting('max_connections') || ', synchronous_commit=' || current_setting('synchronous_commit')"
  [ -x "$FLEETLOG_PY" ] || { echo "$FLEETLOG_PY missing: run 'make bench' (it installs .venv)"; exit 1; }
  # (b) the peers' virtualenv (the only download; skipped once installed, and when no step uses it)
  case " $STEPS " in *" pgbench "*|*" pgqueuer "*|*" pgqueuer-idiomatic "*) ;; *) return 0 ;; esac
  local want
  want=$(cat "$PEERS/requirements.txt" "$PEERS/requirements.lock.txt" | sha256sum | cut -c1-16)
  if [ "$(cat "$PEERS_VENV/.installed" 2>/dev/null)" != "$want" ]; then
    echo "installing the peers' packages into $PEERS_VENV"
    rm -rf "$PEERS_VENV"
    "$PYTHON" -m venv "$PEERS_VENV"
    "$PEERS_PY" -m pip install --quiet --disable-pip-version-check \
        -r "$PEERS/requirements.txt" -c "$PEERS/requirements.lock.txt"
    echo "$want" >"$PEERS_VENV/.installed"
  fi
}

if [ "$STEPS" != report ]; then
  echo "=== setup $(date -Is)"
  setup
  session start
fi
ran=0
for step in $STEPS; do
  echo "=== $step $(date -Is) load $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$step" = report ] || ran=1
  case $step in
    pgbench)
      "$PEERS_PY" "$PEERS/bench_pgbench.py" --dsn "$DSN" --seconds "$PGBENCH_SECONDS" --repeats "$REPEATS" \
          --out "$OUT_DIR/pgbench-simple.json" ;;
    pgqueuer)
      # strict 8-slot shape: the script's defaults (max_concurrent_tasks=CONC, batch_size=CONC/2)
      "$PEERS_PY" "$PEERS/bench_pgqueuer.py" "${common[@]}" --out "$OUT_DIR/pgqueuer.json" ;;
    pgqueuer-idiomatic)
      # PgQueuer's own defaults (batch 10, no cap), W2 and W3 as in the peers' RESULTS.md
      "$PEERS_PY" "$PEERS/bench_pgqueuer.py" "${common[@]}" --workloads w2,w3 \
          --batch-size 10 --max-concurrent-tasks 0 --out "$OUT_DIR/pgqueuer-idiomatic.json" ;;
    fleetlog)
      # shellcheck disable=SC2086  # FLEETLOG_ARGS is a list of words
      "$FLEETLOG_PY" bench/bench_fleetlog.py "${common[@]}" --out "$OUT_DIR/fleetlog.json" \
          --stats-dir bench/results/tmp/worker-stats $FLEETLOG_ARGS ;;
    fleetlog-prefetch)
      # The worker holding PREFETCH leases beyond its 4 handler threads: bigger claims, no
      # start event (as PgQueuer idiomatic batches 10), W2 and W3; its enqueue is the default's
      # shellcheck disable=SC2086
      "$FLEETLOG_PY" bench/bench_fleetlog.py "${common[@]}" --workloads w2,w3 \
          --worker-set "prefetch=$PREFETCH" --out "$OUT_DIR/fleetlog-prefetch.json" \
          --stats-dir bench/results/tmp/worker-stats $FLEETLOG_ARGS ;;
    fleetlog-http)
      # The same workloads through `fleetlog serve` (started per repeat on Fleetlog's database):
      # httpx producers (POST /v1/jobs/batch, /v1/jobs), workers over HttpPort (long-poll claims)
      http_args=(--path http --http-servers "$HTTP_SERVERS")
      [ -n "$SERVER_POOL" ] && http_args+=(--server-pool "$SERVER_POOL")
      # shellcheck disable=SC2086
      "$FLEETLOG_PY" bench/bench_fleetlog.py "${common[@]}" "${http_args[@]}" \
          --out "$OUT_DIR/fleetlog-http.json" --stats-dir bench/results/tmp/worker-stats $FLEETLOG_ARGS ;;
    fleetlog-http-queue)
      # The HTTP path with the hand-over off (`fleetlog serve --no-handoff`): every job goes
      # through the queue and a woken long-poll's claim, as before the hand-over; W2 and W3
      http_args=(--path http --http-servers "$HTTP_SERVERS" --serve-command "$FLEETLOG_BIN serve --no-handoff")
      [ -n "$SERVER_POOL" ] && http_args+=(--server-pool "$SERVER_POOL")
      # shellcheck disable=SC2086
      "$FLEETLOG_PY" bench/bench_fleetlog.py "${common[@]}" "${http_args[@]}" --workloads w2,w3 \
          --out "$OUT_DIR/fleetlog-http-queue.json" --stats-dir bench/results/tmp/worker-stats $FLEETLOG_ARGS ;;
    fleetlog-http-prefetch)
      # The HTTP path with the workers holding PREFETCH leases beyond their handler threads
      # (as the fleetlog-prefetch step does on the direct path): claim streams of up to
      # CONC + PREFETCH jobs instead of CONC; W2 and W3
      http_args=(--path http --http-servers "$HTTP_SERVERS")
      [ -n "$SERVER_POOL" ] && http_args+=(--server-pool "$SERVER_POOL")
      # shellcheck disable=SC2086
      "$FLEETLOG_PY" bench/bench_fleetlog.py "${common[@]}" "${http_args[@]}" --workloads w2,w3 \
          --worker-set "prefetch=$PREFETCH" --out "$OUT_DIR/fleetlog-http-prefetch.json" \
          --stats-dir bench/results/tmp/worker-stats $FLEETLOG_ARGS ;;
    fleetlog-http-procs)
      # The HTTP path with `fleetlog serve --processes $SERVER_PROCESSES` (one socket, that many
      # server processes; hand-over on); W2 and W3
      http_args=(--path http --http-servers "$HTTP_SERVERS"
                 --serve-command "$FLEETLOG_BIN serve --processes $SERVER_PROCESSES")
      [ -n "$SERVER_POOL" ] && http_args+=(--server-pool "$SERVER_POOL")
      # shellcheck disable=SC2086
      "$FLEETLOG_PY" bench/bench_fleetlog.py "${common[@]}" "${http_args[@]}" --workloads w2,w3 \
          --out "$OUT_DIR/fleetlog-http-procs.json" --stats-dir bench/results/tmp/worker-stats $FLEETLOG_ARGS ;;
    analytics)
      # The ClickHouse consumer (embedded chDB, on a thread of the bench process) following the log
      # while the W2 drain runs (same workers as the fleetlog step), then rebuilds from the log
      analytics_args=(--dsn "$DSN" --n "$ANALYTICS_N" --procs "$PROCS" --concurrency "$CONC"
                      --repeats "$ANALYTICS_REPEATS" --min-events "$ANALYTICS_MIN_EVENTS")
      [ "$ANALYTICS_BASELINE" = 1 ] && analytics_args+=(--baseline)
      # shellcheck disable=SC2086  # ANALYTICS_ARGS is a list of words
      "$FLEETLOG_PY" bench/bench_analytics.py "${analytics_args[@]}" --command "$COMMAND" \
          --out "$OUT_DIR/analytics.json" --stats-dir bench/results/tmp/analytics-worker-stats $ANALYTICS_ARGS ;;
    report)
      if [ "$ran" = 1 ]; then session end; fi  # a report-only run keeps the session's times
      "$FLEETLOG_PY" bench/report.py --results "$OUT_DIR" --out "$REPORT" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "=== done $(date -Is)"
