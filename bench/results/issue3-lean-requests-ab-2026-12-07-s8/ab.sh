#!/bin/bash
# usage: ab.sh OUTDIR PAIRS
out=$1; pairs=${2:-3}; mkdir -p $out
for i in $(seq 1 $pairs); do
 for side in base lean; do
  ROOT=/tmp/ab-$side
  BENCH_PEERS_DIR=/work/shared/bench-peers /work/main/.venv/bin/python -P $ROOT/bench/bench_fleetlog.py --dsn postgresql://postgres@127.0.0.1:5432/bench --path http --workloads w3 --repeats 3 --rate 200 --duration 20 --producers 4 --procs 2 --concurrency 4 --out $out/$side-$i.json --serve-command "env PYTHONPATH=$ROOT /work/main/.venv/bin/python -P -m adapters.cli serve" > $out/$side-$i.log 2>&1
  echo "$side-$i rc=$?"
 done
done
