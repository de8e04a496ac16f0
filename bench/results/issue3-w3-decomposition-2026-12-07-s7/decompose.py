"""Per-job decomposition of W3 over HTTP, from the files ``decomposition.patch`` writes.

    python decompose.py DIR    # the directory the instrumented run wrote (/tmp/ab)

Matches each job by id across the server (hand-over start, commit start and end), the
worker's stream reader (the job's line read) and the handler (submit time, handler
start); leaves out the first 0.5 s (warm-up, README.md).
"""

from __future__ import annotations

import glob
import sys


def lines(pattern: str) -> list[list[str]]:
    out = []
    for name in glob.glob(pattern):
        with open(name) as f:
            out.extend(line.split() for line in f)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * q)] * 1000


def main(d: str) -> None:
    srv = {p[4]: (float(p[0]), float(p[1]), float(p[2])) for p in lines(f"{d}/srv-*.txt") if len(p) == 5}
    rx = {p[0]: float(p[1]) for p in lines(f"{d}/rx-*.txt")}
    ts = {p[2]: (float(p[0]), float(p[1])) for p in lines(f"{d}/ts-*.txt")}
    rows = []
    for job, (sent, started) in ts.items():
        if job in srv and job in rx:
            t0, t1, t2 = srv[job]
            rows.append((started - sent, t0 - sent, t1 - t0, t2 - t1, rx[job] - t2, started - rx[job], sent))
    first = min(r[6] for r in rows)
    rows = sorted(r for r in rows if r[6] - first > 0.5)
    names = ["total", "send->hand_over", "build unit", "unit+PG RT", "commit->worker rx", "rx->handler"]
    print(len(rows), "jobs (after the first 0.5 s)")
    for i, name in enumerate(names):
        col = [r[i] for r in rows]
        print(f"{name:20s} p50 {pct(col, 0.5):6.2f} p90 {pct(col, 0.9):6.2f} p99 {pct(col, 0.99):6.2f}")
    top = rows[-int(len(rows) * 0.02) :]
    print("mean of each part over the slowest 2%:")
    for i, name in enumerate(names):
        print(f"   {name:20s} {sum(r[i] for r in top) / len(top) * 1000:6.2f}")
    lag = sorted(float(p[1]) for p in lines(f"{d}/lag-*.txt"))
    if lag:
        print(
            f"loop lag events >1 ms: {len(lag)}, p50 {lag[len(lag) // 2] * 1000:.2f} max {lag[-1] * 1000:.2f}"
        )
    tx = [tuple(map(float, p)) for p in lines(f"{d}/tx-*.txt")][50:]
    for name, i, j in (("getconn", 0, 1), ("python work", 1, 2), ("commit send+wait", 2, 3)):
        col = [r[j] - r[i] for r in tx]
        if col:
            print(f"{name:18s} p50 {pct(col, 0.5):.2f} p90 {pct(col, 0.9):.2f} p99 {pct(col, 0.99):.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
