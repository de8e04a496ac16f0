"""CPU per request of the client's two paths against micro_server.py (a bare uvicorn app
answering a room request's answer): Session.call through httpx, and Session.call with
lean=True (adapters/client/lean.py). Run from the repository root:
    .venv/bin/python bench/results/issue3-lean-requests-ab-2026-12-07-s8/micro_server.py &
    .venv/bin/python bench/results/issue3-lean-requests-ab-2026-12-07-s8/micro_client.py
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from adapters.client.session import Session

N = 3000
BODY = {"stream": "0" * 32, "jobs": 3}


def bench(name, call):
    for _ in range(200):
        call()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(N):
        call()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    print(f"{name:8s} CPU {1e6 * cpu / N:6.1f} us/request, wall {1e6 * wall / N:6.1f} us/request")


session = Session("http://127.0.0.1:8931", "t0ken")
for lean in (False, True, False, True):
    bench(
        "lean" if lean else "httpx",
        lambda lean=lean: session.call(
            "POST", "/v1/claim/room", lambda r: r.json(), safe=False, body=BODY, lean=lean
        ),
    )
